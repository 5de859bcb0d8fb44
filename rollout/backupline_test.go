package rollout_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
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

// A restore that fails in a rollback names its user once in the line and
// the freeze: statebackup's own errors (*statebackup.RestoreError) name the
// user and the snapshot already, and still begin with the step the runbook
// looks for ("restore U").
func TestFailedRestoreNamesTheUserOnce(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"an error that names the user", &statebackup.RestoreError{User: "bob", Snapshot: "/b/bob/s", Err: errors.New("disk full")},
			"restore bob from /b/bob/s: disk full"},
		{"an error that does not", errors.New("disk full"), "restore bob: disk full"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := newSim(t)
			sim.FailCanary(v2, "bob")
			e := sim.Engine(rollout.Options{})
			b := e.Backups.(*rollouttest.Backuper)
			restore := b.RestoreFunc
			b.RestoreFunc = func(ctx context.Context, tg statebackup.Target, s statebackup.Snapshot) error {
				if tg.User == "bob" {
					return c.err
				}
				return restore(ctx, tg, s)
			}
			res, err := e.Run(context.Background())
			require.ErrorIs(t, err, rollout.ErrRollbackFailed)
			require.Contains(t, res.Line(), c.want)
			require.Equal(t, 1, strings.Count(res.Line(), "restore bob"), res.Line())
			s, err := e.Status(context.Background())
			require.NoError(t, err)
			require.NotNil(t, s.Freeze)
			require.Contains(t, s.Freeze.Reason, "the rollback failed: "+c.want)
		})
	}
}
