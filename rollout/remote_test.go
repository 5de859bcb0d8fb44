package rollout_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
	"github.com/t3fleet/t3fleet/statebackup"
)

// An instance whose state is not on this host (a Locator that gives no
// StateDir, as one over Kubernetes would) reaches the Backuper with no
// UserdataDir: never "userdata", which a Store would read in the working
// directory.
func TestInstanceWithoutStateDirHasNoUserdataDir(t *testing.T) {
	require.Empty(t, rollout.UserdataDir(t3fleet.Instance{User: "alice"}))

	sim := newSim(t)
	e := sim.Engine(rollout.Options{})
	e.Locator = rollout.LocatorFunc(func(_ context.Context, u rollout.Unit) (t3fleet.Instance, error) {
		return t3fleet.Instance{User: u.User, BaseURL: "http://" + u.User + ".t3.svc:3773"}, nil
	})
	var mu sync.Mutex
	var dirs []string
	e.Backups = &rollouttest.Backuper{BackupFunc: func(_ context.Context, tg statebackup.Target, label string) (statebackup.Snapshot, error) {
		mu.Lock()
		defer mu.Unlock()
		dirs = append(dirs, tg.UserdataDir)
		return statebackup.Snapshot{User: tg.User, Label: label}, nil
	}}
	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeDone, res.Outcome)
	require.Len(t, dirs, 4)
	for _, d := range dirs {
		require.Empty(t, d)
	}
}
