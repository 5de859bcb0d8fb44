package rollout_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
	"github.com/t3fleet/t3fleet/statebackup"
)

// A run crashed while alice's restart was under way (she may run the
// target on a migrated database). The run that finishes the journal
// finishes her restart first, whatever order it would pick (the operator
// finishing it by hand with --order, or another operator): had another
// user's restart come first, it would have overwritten the journal's step,
// alice would have been deferred as busy, and a later canary failure's
// rollback would have left her on the target's migrated database.
func TestResumedCanaryRemembersTheRestartUnderWayWhateverTheOrder(t *testing.T) {
	cases := []struct {
		name   string
		resume func(e *rollout.Engine)
	}{
		{"finished with --order bob", func(e *rollout.Engine) {
			e.Order = []string{"bob"}
		}},
		{"operator alice finishes it", func(e *rollout.Engine) {
			e.OperatorUser = "alice"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim, e := crashedAfterAlicesRestart(t)
			sim.SetBusy("alice", true) // she started a turn on the new build meanwhile
			sim.FailCanary(v2, "carol")
			e.CrashAfter = nil
			rec := &recorder{}
			e.OnEvent = rec.on
			tc.resume(e)
			res, err := e.Run(context.Background())
			require.ErrorIs(t, err, rollout.ErrRolledBack, res.Line())
			require.Equal(t, v1, sim.Current())

			var aliceSaw []rollout.EventKind
			for _, ev := range rec.events {
				if ev.User == "alice" {
					aliceSaw = append(aliceSaw, ev.Kind)
				}
			}
			schema, err := sim.DBSchema("alice")
			require.NoError(t, err)
			require.Equal(t, v1, schema, "alice's database is back at its prebump snapshot; her events in the resumed run: %v", aliceSaw)
			require.Equal(t, v1, sim.User("alice").Version, "alice runs the build the fleet went back to")
		})
	}
}

// A unit added between the crash and the run that finishes the journal has
// no prebump snapshot (the backups were taken by the crashed run): the
// resumed canary backs it up before it moves it, so that when a later
// canary fails the rollback can put it back on its own data.
func TestResumedCanaryNeverMovesAUnitWithoutAPrebumpSnapshot(t *testing.T) {
	for _, step := range []string{"activate", "restart:alice", "verified:alice"} {
		t.Run(step, func(t *testing.T) {
			sim := newSim(t)
			e := sim.Engine(rollout.Options{CrashAfter: func(s string) bool { return s == step }})
			_, err := e.Run(context.Background())
			require.ErrorIs(t, err, rollout.ErrCrashed)

			// A user added the next morning, before the run that finishes it.
			require.NoError(t, sim.AddUser("aaron", &rollouttest.SimUser{Running: true, Version: v1, DBSize: 250}))
			sim.FailCanary(v2, "carol")
			e.CrashAfter = nil
			res, err := e.Run(context.Background())
			require.ErrorIs(t, err, rollout.ErrRolledBack, res.Line())
			require.Equal(t, v1, sim.Current())

			schema, err := sim.DBSchema("aaron")
			require.NoError(t, err)
			require.Equal(t, v1, schema, "aaron's database matches the build the fleet went back to; his calls: %v", callsFor(sim, "aaron"))
		})
	}
}

// A unit that joined after the crashed run's backups and whose own backup
// fails is deferred, never moved: the drain backs it up before it restarts
// it.
func TestResumedCanaryDefersAJoinedUnitItCannotBackUp(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{CrashAfter: func(s string) bool { return s == "activate" }})
	_, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrCrashed)

	require.NoError(t, sim.AddUser("aaron", &rollouttest.SimUser{Running: true, Version: v1, DBSize: 250}))
	failBackupOf(e, func(tg statebackup.Target) bool { return tg.User == "aaron" }, errors.New("disk full"))
	e.CrashAfter = nil
	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeDone, res.Outcome, res.Line())
	require.Contains(t, res.Deferred, "aaron")
	require.NotContains(t, res.Restarted, "aaron")
	require.Equal(t, v1, sim.User("aaron").Version, "still the process it had")
	m, err := e.State().Marker("aaron")
	require.NoError(t, err)
	require.NotNil(t, m, "the drain will move it")
}
