package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

// A health check that could not run (no scratch space, the candidate's
// install, a port race) or was interrupted says nothing about the build: the
// run fails, nothing restarts, but the target is not a dead end and the next
// run tries it again. Only a verdict (TestRunHealthCheckFailureRestartsNothing)
// blames the build.
func TestRunHealthCheckThatCouldNotRunBlamesNoBuild(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(ctx context.Context, cancel context.CancelFunc) (rollout.HealthReport, error)
	}{
		{"error", func(context.Context, context.CancelFunc) (rollout.HealthReport, error) {
			return rollout.HealthReport{Reason: "scratch: no space left on device"}, errors.New("scratch: no space left on device")
		}},
		{"interrupted", func(ctx context.Context, cancel context.CancelFunc) (rollout.HealthReport, error) {
			cancel() // as systemd stopping the updater mid-check
			<-ctx.Done()
			return rollout.HealthReport{Reason: "serve not ready: " + ctx.Err().Error()}, nil
		}},
		// The engine's own bound on the whole check (HealthTimeout) ran out,
		// e.g. copying a large seed on a slow disk took most of it: the
		// checker's own bounds (readiness, mint, requests) are what judge
		// the build.
		{"its time budget ran out", func(ctx context.Context, _ context.CancelFunc) (rollout.HealthReport, error) {
			<-ctx.Done()
			return rollout.HealthReport{Reason: "serve not ready: " + ctx.Err().Error()}, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := newSim(t)
			e := sim.Engine(rollout.Options{HealthTimeout: 200 * time.Millisecond})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e.Health = &rollouttest.HealthChecker{CheckFunc: func(ctx context.Context, _ rollout.Build, _ string) (rollout.HealthReport, error) {
				return tc.check(ctx, cancel)
			}}

			res, err := e.Run(ctx)
			require.Error(t, err)
			require.NotErrorIs(t, err, rollout.ErrHealthCheckFailed)
			require.Equal(t, rollout.OutcomeFailed, res.Outcome, res.Line())
			require.Contains(t, res.Line(), "health check could not run")
			require.Equal(t, 1, res.ExitCode())
			require.Empty(t, restarts(sim))
			require.Equal(t, v1, sim.Current())
			des, err := e.State().DeadEndVersions()
			require.NoError(t, err)
			require.Empty(t, des, "the build is not blamed")
			j, err := e.State().Journal()
			require.NoError(t, err)
			require.Nil(t, j, "nothing to finish: nothing changed")

			e.Health = sim.HealthChecker()
			res, err = e.Run(context.Background())
			require.NoError(t, err)
			require.Equal(t, rollout.OutcomeDone, res.Outcome, "the next run takes the same target: %s", res.Line())
		})
	}
}

// Before anything changes, a user must pair through the dispatch on the
// current build: a dispatch that is down (or any path that fails on the
// build already running) would otherwise make the first canary fail, and a
// good build be rolled back, dead-ended and frozen out. One user's own
// failure on the current build is not the path's: the next one is tried.
func TestRunChecksTheVerificationPathFirst(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failing []string // users whose verification fails on v1
		done    bool
	}{
		{"path works", nil, true},
		{"the first user's own failure", []string{"alice"}, true},
		{"the path is down", []string{"alice", "bob", "carol", "zed"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := newSim(t)
			for _, u := range tc.failing {
				sim.FailCanary(v1, u)
			}
			rec := &recorder{}
			e := sim.Engine(rollout.Options{OnEvent: rec.on})

			res, err := e.Run(context.Background())
			if tc.done {
				require.NoError(t, err)
				require.Equal(t, rollout.OutcomeDone, res.Outcome, res.Line())
				require.Contains(t, rec.kinds(), rollout.EventPathChecked)
				require.Less(t, slices.Index(rec.kinds(), rollout.EventPathChecked), slices.Index(rec.kinds(), rollout.EventBackedUp),
					"checked before the backups")
				return
			}
			require.Error(t, err)
			require.Equal(t, rollout.OutcomeFailed, res.Outcome, res.Line())
			require.Contains(t, res.Line(), "before any change")
			require.Empty(t, restarts(sim))
			require.Equal(t, v1, sim.Current())
			require.NotContains(t, rec.kinds(), rollout.EventBackedUp, "no backups taken for a run that cannot verify")
			require.Contains(t, rec.kinds(), rollout.EventPathBroken, "an alert line")
			des, err := e.State().DeadEndVersions()
			require.NoError(t, err)
			require.Empty(t, des, "no build blamed")
			j, err := e.State().Journal()
			require.NoError(t, err)
			require.Nil(t, j)
			_, err = os.Stat(filepath.Join(sim.Dir, "t3-autoupdate.freeze"))
			require.ErrorIs(t, err, os.ErrNotExist, "not frozen: the next run tries again")
			require.Contains(t, res.Line(), "--skip-path-check", "the way out is named")

			// The current build broke pairing for everyone and the target
			// fixes it: the operator skips the check, the canary verifies.
			e.SkipPathCheck = true
			res, err = e.Run(context.Background())
			require.NoError(t, err)
			require.Equal(t, rollout.OutcomeDone, res.Outcome, res.Line())
		})
	}
}

// An updater stopped mid-canary (systemctl stop, a shutdown, Ctrl-C) has
// learnt nothing about the build: the interrupted restart or verification
// must not roll back, dead-end or freeze it. The journal stays, and the
// next run finishes the rollout as it would after a crash there.
func TestRunInterruptedMidCanaryBlamesNoBuild(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(sim *simWraps, cancel context.CancelFunc)
	}{
		{"during a restart", func(w *simWraps, cancel context.CancelFunc) {
			w.restart = func(ctx context.Context, u rollout.Unit, next func() error) error {
				if u.User != "bob" {
					return next()
				}
				err := next() // the job was queued; the updater stops waiting for it
				cancel()
				return fmt.Errorf("restart %s: waiting for the job: %w (%v)", u.Name, ctx.Err(), err)
			}
		}},
		{"during a verification", func(w *simWraps, cancel context.CancelFunc) {
			w.verify = func(ctx context.Context, user string, next func() error) error {
				if user != "bob" {
					return next()
				}
				cancel()
				<-ctx.Done()
				return fmt.Errorf("pairing %s through the dispatch: %w", user, ctx.Err())
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := newSim(t)
			rec := &recorder{}
			e := sim.Engine(rollout.Options{OnEvent: rec.on})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := wrapSim(sim, e)
			tc.wrap(w, cancel)

			res, err := e.Run(ctx)
			require.ErrorIs(t, err, rollout.ErrInterrupted)
			require.Equal(t, rollout.OutcomeInterrupted, res.Outcome, res.Line())
			require.Contains(t, res.Line(), "INTERRUPTED")
			require.Contains(t, res.Line(), "bob")
			require.Equal(t, 1, res.ExitCode())
			require.NotContains(t, rec.kinds(), rollout.EventVerifyFailed, "nothing failed")
			require.Contains(t, rec.kinds(), rollout.EventInterrupted)
			des, err := e.State().DeadEndVersions()
			require.NoError(t, err)
			require.Empty(t, des, "the build is not blamed")
			fr, err := e.Freezer().Read()
			require.NoError(t, err)
			require.Nil(t, fr, "nothing is frozen")
			j, err := e.State().Journal()
			require.NoError(t, err)
			require.NotNil(t, j, "the journal stays for the next run")
			require.Equal(t, rollout.PhaseCanary, j.Phase)

			w.restart, w.verify = nil, nil
			res, err = e.Run(context.Background())
			require.NoError(t, err)
			require.Equal(t, rollout.OutcomeDone, res.Outcome, res.Line())
			require.True(t, res.Resumed)
			for _, u := range sim.Users() {
				require.Equal(t, v2, sim.User(u).Version, u)
			}
			lg, err := e.State().LastGood()
			require.NoError(t, err)
			require.Equal(t, v2, lg)
		})
	}
}

// A rollback, once begun, is finished even when the updater is told to stop
// meanwhile: half a rollback leaves a user's unit stopped, or on a database
// the build it runs cannot read.
func TestRollbackFinishesWhenInterrupted(t *testing.T) {
	sim := newSim(t)
	sim.FailCanary(v2, "bob")
	e := sim.Engine(rollout.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := wrapSim(sim, e)
	w.stop = func(ctx context.Context, u rollout.Unit, next func() error) error {
		cancel() // the stop signal arrives as the rollback begins
		if ctx.Err() != nil {
			return fmt.Errorf("stop %s: %w", u.Name, ctx.Err())
		}
		return next()
	}
	w.verify = func(ctx context.Context, user string, next func() error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("pairing %s: %w", user, ctx.Err())
		}
		return next()
	}

	res, err := e.Run(ctx)
	require.ErrorIs(t, err, rollout.ErrRolledBack)
	require.Equal(t, rollout.OutcomeRolledBack, res.Outcome, res.Line())
	require.Equal(t, v1, sim.Current())
	for _, u := range sim.Users() {
		su := sim.User(u)
		require.True(t, su.Running, u)
		require.Equal(t, v1, su.Version, u)
		schema, err := sim.DBSchema(u)
		require.NoError(t, err)
		require.Equal(t, v1, schema, "%s's database is back before the bad build", u)
	}
}

// simWraps lets a test step in front of the sim's restarts, stops and
// verifications (nil: straight through).
type simWraps struct {
	restart, stop func(ctx context.Context, u rollout.Unit, next func() error) error
	verify        func(ctx context.Context, user string, next func() error) error
}

func wrapSim(sim *rollouttest.Sim, e *rollout.Engine) *simWraps {
	w := &simWraps{}
	um := sim.UnitManager()
	restart, stop := um.RestartFunc, um.StopFunc
	um.RestartFunc = func(ctx context.Context, u rollout.Unit) error {
		next := func() error { return restart(ctx, u) }
		if w.restart == nil {
			return next()
		}
		return w.restart(ctx, u, next)
	}
	um.StopFunc = func(ctx context.Context, u rollout.Unit) error {
		next := func() error { return stop(ctx, u) }
		if w.stop == nil {
			return next()
		}
		return w.stop(ctx, u, next)
	}
	v := sim.Verifier()
	verify := v.VerifyPairingFunc
	v.VerifyPairingFunc = func(ctx context.Context, user string) error {
		next := func() error { return verify(ctx, user) }
		if w.verify == nil {
			return next()
		}
		return w.verify(ctx, user, next)
	}
	e.Units, e.Verifier = um, v
	return w
}

// The drainer and the watchdog stopped mid-restart: no rollback, no freeze,
// no dead end; the drainer's marker stays, so the next tick drains the user.
func TestCycleInterruptedBlamesNoBuild(t *testing.T) {
	interruptBob := func(w *simWraps, cancel context.CancelFunc) {
		w.verify = func(ctx context.Context, user string, next func() error) error {
			if user != "bob" {
				return next()
			}
			cancel()
			return fmt.Errorf("pairing %s: %w", user, ctx.Err())
		}
	}
	t.Run("drain", func(t *testing.T) {
		f := newDrain(t, "bob")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := wrapSim(f.sim, f.e)
		interruptBob(w, cancel)

		_, err := f.e.MigrateIdle(ctx, rollout.DrainOptions{})
		require.ErrorIs(t, err, rollout.ErrInterrupted)
		requireNoBlame(t, f.e)
		require.NotContains(t, f.sim.Calls(), "restore bob")
		require.NotNil(t, f.marker(t, "bob"), "bob is drained by the next tick")

		w.verify = nil
		res, err := f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
		require.NoError(t, err)
		require.Equal(t, []string{"bob"}, res.Migrated)
	})
	t.Run("watchdog", func(t *testing.T) {
		f := newWD(t)
		f.down["bob"] = errWedged
		f.tick(t)
		f.tick(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		interruptBob(wrapSim(f.sim, f.e), cancel)

		_, err := f.wd.Tick(ctx)
		require.ErrorIs(t, err, rollout.ErrInterrupted)
		requireNoBlame(t, f.e)
		require.NotContains(t, f.sim.Calls(), "restore bob")
		require.Equal(t, 1, f.sim.User("bob").Restarts, "one restart, not a second one without a backup")
	})
}

func requireNoBlame(t *testing.T, e *rollout.Engine) {
	t.Helper()
	des, err := e.State().DeadEndVersions()
	require.NoError(t, err)
	require.Empty(t, des, "no build is blamed")
	fr, err := e.Freezer().Read()
	require.NoError(t, err)
	require.Nil(t, fr, "nothing is frozen")
}

// A run that stopped (crash or signal) while alice's restart was under way
// may have left her on the target, her database migrated. The next run
// must not defer her because she is busy now: if a later canary failed,
// the rollback would not restore her, and she would be left on a database
// the old build cannot read.
func TestResumedCanaryFinishesTheRestartUnderWay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failBob bool
	}{
		{"the rollout completes", false},
		{"a later canary fails", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, e := crashedAfterAlicesRestart(t)
			sim.SetBusy("alice", true) // she started a turn on the new build meanwhile
			if tc.failBob {
				sim.FailCanary(v2, "bob")
			}
			e.CrashAfter = nil
			res, err := e.Run(context.Background())
			require.NotContains(t, res.Deferred, "alice", res.Line())
			m, merr := e.State().Marker("alice")
			require.NoError(t, merr)
			require.Nil(t, m, "no deferral marker for a user already moved")
			if !tc.failBob {
				require.NoError(t, err)
				require.Equal(t, rollout.OutcomeDone, res.Outcome, res.Line())
				require.Contains(t, res.Restarted, "alice")
				return
			}
			require.ErrorIs(t, err, rollout.ErrRolledBack)
			require.Equal(t, v1, sim.Current())
			for _, u := range sim.Users() {
				schema, err := sim.DBSchema(u)
				require.NoError(t, err)
				require.Equal(t, v1, schema, "%s's database matches the build it runs", u)
			}
		})
	}
}

// The stopped run's restart may also have left the unit down (the process
// died with the updater, or the new build's start was cut short): the next
// run starts and verifies it rather than skip it as one the operator stopped.
func TestResumedCanaryStartsTheUnitItLeftDown(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{CrashAfter: func(s string) bool { return s == "restart:alice" }})
	_, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrCrashed)
	require.NoError(t, e.Units.Stop(context.Background(), rollout.Unit{Name: "t3-serve@alice.service", User: "alice"}))

	e.CrashAfter = nil
	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Contains(t, res.Restarted, "alice", res.Line())
	require.True(t, sim.User("alice").Running)
}

// The unit manager itself failing (the bus gone, the manager restarting, an
// unknown unit) tells nothing of the build: the run stops without a
// rollback, a dead end or a freeze, and keeps its journal; the next run
// restarts that user again. A unit that fails its own start still blames
// the build (TestRunCanaryFailureRollsBackAndFreezes).
func TestRunUnitManagerFailureBlamesNoBuild(t *testing.T) {
	sim := newSim(t)
	rec := &recorder{}
	e := sim.Engine(rollout.Options{OnEvent: rec.on})
	w := wrapSim(sim, e)
	w.restart = func(ctx context.Context, u rollout.Unit, next func() error) error {
		if u.User != "bob" {
			return next()
		}
		return fmt.Errorf("%w: restart %s: dbus: connection closed by user", rollout.ErrUnitManager, u.Name)
	}

	res, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrUnitManager)
	require.Equal(t, rollout.OutcomeFailed, res.Outcome, res.Line())
	require.Contains(t, res.Line(), "no build is blamed")
	require.Equal(t, 1, res.ExitCode())
	require.NotContains(t, rec.kinds(), rollout.EventRolledBack)
	requireNoBlame(t, e)
	j, err := e.State().Journal()
	require.NoError(t, err)
	require.NotNil(t, j, "the journal stays for the next run")

	w.restart = nil
	res, err = e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeDone, res.Outcome, res.Line())
	require.Contains(t, res.Restarted, "bob")
}

// After a restart the instance that answers must run the build it was
// restarted onto: a stale process holding the port (the unit's new one
// died on EADDRINUSE), or units whose command does not run the switched
// binary, would otherwise pass the verification with the old build and the
// run would call the new one proven. That is no build's fault (no dead
// end), but the next run would meet it again: the run rolls back and
// freezes, and a person looks.
func TestRunChecksTheRestartedInstanceRunsTheTarget(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{})
	um := e.Units.(*rollouttest.UnitManager)
	running := um.RunningVersionFunc
	um.RunningVersionFunc = func(ctx context.Context, u rollout.Unit) (string, error) {
		if u.User == "bob" {
			return v1, nil // bob's port is answered by a process of the old build, for good
		}
		return running(ctx, u)
	}
	res, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrRolledBack)
	require.Equal(t, rollout.OutcomeRolledBack, res.Outcome, res.Line())
	require.Contains(t, res.Line(), "bob answers as "+v1)
	des, err := e.State().DeadEndVersions()
	require.NoError(t, err)
	require.Empty(t, des, "no build is blamed")
	fr, err := e.Freezer().Read()
	require.NoError(t, err)
	require.NotNil(t, fr, "frozen: the next run would meet the same")
	require.Equal(t, v1, sim.Current())
	for _, u := range sim.Users() {
		schema, err := sim.DBSchema(u)
		require.NoError(t, err)
		require.Equal(t, v1, schema, u)
	}

	sim.SetBusy("bob", true)
	before := sim.User("bob").Restarts
	res, err = e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeFrozen, res.Outcome, res.Line())
	require.Equal(t, before, sim.User("bob").Restarts, "busy bob is left alone")
}
