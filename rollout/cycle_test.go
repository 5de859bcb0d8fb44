package rollout_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

// drainOfBob: the active build is drainNew, unproven (last-good drainOld),
// and bob, the only unit, was deferred on drainOld. The unit manager
// reports ActiveSince from each (re)start when activeSince is set, as
// systemd does.
func drainOfBob(t *testing.T, activeSince bool) (*rollouttest.Sim, *rollout.Engine, *context.CancelFunc) {
	t.Helper()
	sim, err := rollouttest.NewSim(t.TempDir(), drainNew)
	require.NoError(t, err)
	e := sim.Engine(rollout.Options{Now: func() time.Time { return at3am }})
	st := e.State()
	require.NoError(t, st.SetLastGood(drainOld))
	require.NoError(t, sim.AddUser("bob", &rollouttest.SimUser{Running: true, Version: drainOld, DBSize: 100}))
	require.NoError(t, st.Defer("bob", drainNew))

	um := e.Units.(*rollouttest.UnitManager)
	started := map[string]time.Time{}
	status, restart, start := um.StatusFunc, um.RestartFunc, um.StartFunc
	um.StatusFunc = func(ctx context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
		us, err := status(ctx, u)
		if activeSince && us.Active {
			us.ActiveSince = started[u.User]
		}
		return us, err
	}
	um.RestartFunc = func(ctx context.Context, u rollout.Unit) error {
		started[u.User] = time.Now()
		return restart(ctx, u)
	}
	um.StartFunc = func(ctx context.Context, u rollout.Unit) error {
		started[u.User] = time.Now()
		return start(ctx, u)
	}
	// A signal (systemctl stop of the drain) during bob's verification.
	var cancel context.CancelFunc
	v := e.Verifier.(*rollouttest.Verifier)
	verify := v.VerifyPairingFunc
	v.VerifyPairingFunc = func(ctx context.Context, user string) error {
		if cancel != nil {
			cancel()
			cancel = nil
			return fmt.Errorf("pairing %s: %w", user, ctx.Err())
		}
		return verify(ctx, user)
	}
	return sim, e, &cancel
}

// A drain stopped (crash or signal) after bob's restart onto the active
// build, before his verification, leaves bob's marker and its cycle
// journal, and the next drain finishes what this one began: it verifies
// bob, and on a failure rolls him back onto the backup taken before that
// restart. Without the journal, a unit manager that reports start times
// (systemd) cleared the marker as "restarted after the marker" and bob was
// never verified; without start times, bob got a new backup, of the
// database his unverified restart had migrated, and a failed verification
// put him on the old build over it.
func TestMigrateIdleFinishesTheRestartAnInterruptedDrainBegan(t *testing.T) {
	// "none" is the control: an uninterrupted drain rolls bob back.
	for _, how := range []string{"none", "crash", "signal"} {
		for _, activeSince := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/activeSince=%v", how, activeSince), func(t *testing.T) {
				sim, e, cancelVerify := drainOfBob(t, activeSince)
				sim.FailCanary(drainNew, "bob") // the active build breaks bob's pairing

				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				switch how {
				case "crash":
					e.CrashAfter = func(s string) bool { return s == "restart:bob" }
				case "signal":
					*cancelVerify = cancel
				}
				first, err := e.MigrateIdle(ctx, rollout.DrainOptions{})
				require.Error(t, err)
				mk, err := e.State().Marker("bob")
				require.NoError(t, err)
				require.NotNil(t, mk, "the marker stays for the next tick")
				if how != "none" {
					status, err := e.Status(context.Background())
					require.NoError(t, err)
					require.Contains(t, status.Lines(), "unfinished pre-migrate-idle of bob onto "+drainNew+
						", phase restart (the next run, drain or watchdog tick finishes it first)")
				}
				if how == "none" {
					require.Equal(t, rollout.DrainRolledBack, first.Outcome, first.Line())
				} else {
					schema, err := sim.DBSchema("bob")
					require.NoError(t, err)
					require.Equal(t, drainNew, schema, "bob moved before the drain stopped")
				}

				e.CrashAfter = nil
				res, err := e.MigrateIdle(context.Background(), rollout.DrainOptions{})
				pairs := e.Verifier.VerifyPairing(context.Background(), "bob")
				schema, serr := sim.DBSchema("bob")
				require.NoError(t, serr)
				require.NoError(t, pairs,
					"after the next drain (%s, err=%v), bob runs %s on a %s database and cannot pair; calls: %v",
					res.Line(), err, sim.User("bob").Version, schema, sim.Calls())
			})
		}
	}
}

// A crash inside the rollback of a failed drain (Cycle's Rollback, which
// the watchdog shares) is finished by the next drain or run, as a run's
// own rollback is, although the freeze that rollback wrote first stops
// everything else: bob runs again on the previous build and his own data,
// and the shared binary is switched back.
func TestMigrateIdleRollbackConvergesAfterACrash(t *testing.T) {
	for _, step := range []string{"", "rollback-freeze", "rollback-restore:bob", "rollback-activate"} {
		name := step
		if name == "" {
			name = "no crash"
		}
		t.Run(name, func(t *testing.T) {
			sim, e, _ := drainOfBob(t, false)
			sim.Publish("nightly", drainNew, at3am.Add(-24*time.Hour))
			sim.FailCanary(drainNew, "bob")
			crashed := false
			e.CrashAfter = func(s string) bool {
				if s == step && !crashed {
					crashed = true
					return true
				}
				return false
			}
			_, err := e.MigrateIdle(context.Background(), rollout.DrainOptions{})
			require.Error(t, err)
			require.Equal(t, step != "", crashed)

			e.CrashAfter = nil
			dres, derr := e.MigrateIdle(context.Background(), rollout.DrainOptions{})
			rres, rerr := e.Run(context.Background())
			bob := sim.User("bob")
			schema, err := sim.DBSchema("bob")
			require.NoError(t, err)
			next := fmt.Sprintf("next drain: %s (%v); next run: %s (%v); bob running=%v on %s, database %s, binary %s",
				dres.Line(), derr, rres.Line(), rerr, bob.Running, bob.Version, schema, sim.Current())
			require.True(t, bob.Running, next)
			require.Equal(t, drainOld, sim.Current(), next)
			require.Equal(t, drainOld, schema, next)
			require.NoError(t, e.Verifier.VerifyPairing(context.Background(), "bob"), next)
		})
	}
}

// A cycle journal that cannot be read stops the run, the drain and the
// watchdog with its path, and is left as it is for a person.
func TestMalformedCycleJournalStopsEverythingAndIsKept(t *testing.T) {
	sim, e, _ := drainOfBob(t, false)
	path := filepath.Join(e.State().Dir, rollout.CycleJournalFile)
	require.NoError(t, os.WriteFile(path, []byte("{\"user\": \"bob\", \"phase\": \"sideways\"}\n"), 0o644))
	wd := &rollout.Watchdog{Engine: e, Probe: rollout.ProbeFunc(func(context.Context, rollout.Member) error { return nil }),
		WatchdogOptions: rollout.WatchdogOptions{Dir: filepath.Join(sim.Dir, "wd")}}
	_, derr := e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	_, rerr := e.Run(context.Background())
	_, werr := wd.Tick(context.Background())
	_, serr := e.Status(context.Background())
	for _, err := range []error{derr, rerr, werr, serr} {
		require.ErrorIs(t, err, rollout.ErrMalformed)
		require.ErrorContains(t, err, path)
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), "sideways")
	require.Empty(t, sim.Calls(), "nothing was touched")
}

// An interrupted drain's restart is finished even while another unit of the
// host cannot be placed (a bad line of the user map): that one is the
// provisioning's problem, not a reason to leave bob unverified.
func TestUnfinishedCycleIsFinishedBesideAnUnplacedUnit(t *testing.T) {
	sim, e, _ := drainOfBob(t, false)
	e.CrashAfter = func(s string) bool { return s == "restart:bob" }
	_, err := e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.ErrorIs(t, err, rollout.ErrCrashed)
	e.CrashAfter = nil

	addUnplacedUnit(e)
	res, err := e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.NoError(t, err, res.Line())
	require.Equal(t, []string{"bob"}, res.Migrated)
	require.NoFileExists(t, filepath.Join(e.State().Dir, rollout.CycleJournalFile), "finished")
	require.Equal(t, drainNew, sim.User("bob").Version)
}
