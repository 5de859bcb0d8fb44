package rollout_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// A backup that fails stops the run before anything changes, and the line
// an alert shows says so, naming the user once (statebackup's errors
// are *statebackup.BackupError, naming the user).
func TestFailedBackupLineSaysNothingChanged(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"an error that names the user", &statebackup.BackupError{User: "bob", Err: errors.New("snapshot x: sqlite: backup step: database or disk is full")},
			"failed: backup bob: snapshot x: sqlite: backup step: database or disk is full; stopped before any change"},
		{"an error that does not", errors.New("disk full"), "failed: backup bob: disk full; stopped before any change"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := newSim(t)
			e := sim.Engine(rollout.Options{BackupConcurrency: 1})
			failBackupOf(e, func(tg statebackup.Target) bool { return tg.User == "bob" }, c.err)
			res, err := e.Run(context.Background())
			require.Error(t, err)
			require.Equal(t, c.want, res.Line())
			require.Equal(t, 1, res.ExitCode())
			require.Equal(t, v1, sim.Current())
		})
	}
}
