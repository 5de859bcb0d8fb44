package rollout_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

const (
	drainOld = "0.0.30-nightly.20260701.10"
	drainNew = "0.0.30-nightly.20260702.11"
)

// at3am is inside the default window, in local time.
var at3am = time.Date(2026, 11, 24, 3, 0, 0, 0, time.Local)

type drainFixture struct {
	sim    *rollouttest.Sim
	e      *rollout.Engine
	st     rollout.State
	events []rollout.Event
	since  map[string]time.Time // ActiveSince the units report
}

// newDrain: a fleet on drainNew (last-good drainNew) plus the given deferred
// users still on drainOld with markers, the engine's clock at 03:00.
func newDrain(t *testing.T, deferred ...string) *drainFixture {
	t.Helper()
	sim, err := rollouttest.NewSim(t.TempDir(), drainNew, "alice")
	require.NoError(t, err)
	f := &drainFixture{sim: sim, since: map[string]time.Time{}}
	f.e = sim.Engine(rollout.Options{OnEvent: func(ev rollout.Event) { f.events = append(f.events, ev) },
		Now: func() time.Time { return at3am }})
	f.st = f.e.State()
	require.NoError(t, f.st.SetLastGood(drainNew))
	for i, u := range deferred {
		require.NoError(t, sim.AddUser(u, &rollouttest.SimUser{Running: true, Version: drainOld, DBSize: 50 * (i + 1)}))
		require.NoError(t, f.st.Defer(u, drainNew))
	}
	um := f.e.Units.(*rollouttest.UnitManager)
	orig := um.StatusFunc
	um.StatusFunc = func(ctx context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
		us, err := orig(ctx, u)
		us.ActiveSince = f.since[u.User]
		return us, err
	}
	return f
}

func (f *drainFixture) kinds() []rollout.EventKind {
	var out []rollout.EventKind
	for _, ev := range f.events {
		out = append(out, ev.Kind)
	}
	return out
}

func (f *drainFixture) marker(t *testing.T, user string) *rollout.Marker {
	t.Helper()
	m, err := f.st.Marker(user)
	require.NoError(t, err)
	return m
}

// TestMigrateIdleGate is the seed's gate table, over the real idle gate
// (idlegate.DBOracle) reading a real t3 database.
func TestMigrateIdleGate(t *testing.T) {
	now := time.Now()
	const quiet = 15 * time.Minute
	tests := []struct {
		name  string
		setup func(t *testing.T, f *drainFixture, baseDir string) // baseDir of "dana", who is deferred
		want  string                                              // "migrate", "wait" or "clear"
	}{
		{"active turn -> skip", func(t *testing.T, f *drainFixture, dir string) {
			require.NoError(t, t3test.SeedState(dir, t3test.EraC, t3test.SeedOptions{ActiveTurns: 1, Now: now.Add(-time.Hour)}))
		}, "wait"},
		{"quiet < threshold -> skip", func(t *testing.T, f *drainFixture, dir string) {
			require.NoError(t, t3test.SeedState(dir, t3test.EraC, t3test.SeedOptions{Now: now.Add(-time.Minute)}))
		}, "wait"},
		{"quiet -> go", func(t *testing.T, f *drainFixture, dir string) {
			require.NoError(t, t3test.SeedState(dir, t3test.EraC, t3test.SeedOptions{Now: now.Add(-time.Hour)}))
		}, "migrate"},
		{"empty DB -> go", func(t *testing.T, f *drainFixture, dir string) {
			require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraC))
		}, "migrate"},
		{"garbage -> skip", func(t *testing.T, f *drainFixture, dir string) {
			p := filepath.Join(dir, "userdata", "state.sqlite")
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, []byte("this is not a database, not even close to one"), 0o644))
		}, "wait"},
		{"no database at all -> skip", func(t *testing.T, f *drainFixture, dir string) {}, "wait"},
		{"unit restarted after marker -> clear", func(t *testing.T, f *drainFixture, dir string) {
			require.NoError(t, t3test.SeedState(dir, t3test.EraC, t3test.SeedOptions{ActiveTurns: 1, Now: now}))
			f.since["dana"] = f.marker(t, "dana").Written.Add(time.Second)
		}, "clear"},
		{"unit started before marker, idle -> go", func(t *testing.T, f *drainFixture, dir string) {
			require.NoError(t, t3test.SeedState(dir, t3test.EraC, t3test.SeedOptions{Now: now.Add(-time.Hour)}))
			f.since["dana"] = f.marker(t, "dana").Written.Add(-time.Hour)
		}, "migrate"},
		{"marker for missing unit -> clear", func(t *testing.T, f *drainFixture, dir string) {
			require.NoError(t, f.st.Defer("ghost", drainNew))
			require.NoError(t, f.st.ClearMarker("dana"))
			require.NoError(t, f.st.Defer("ghost", drainNew))
		}, "clear"},
		{"unit stopped -> clear", func(t *testing.T, f *drainFixture, dir string) {
			require.NoError(t, f.e.Units.Stop(context.Background(), rollout.Unit{Name: "t3-serve@dana.service", User: "dana"}))
		}, "clear"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, err := rollouttest.NewSim(t.TempDir(), drainNew, "alice")
			require.NoError(t, err)
			// DBSize 0: the Sim leaves dana's database file alone, so a real
			// t3 database can sit there for the real idle gate.
			require.NoError(t, sim.AddUser("dana", &rollouttest.SimUser{Running: true, Version: drainOld}))
			f := &drainFixture{sim: sim, since: map[string]time.Time{}}
			f.e = sim.Engine(rollout.Options{Now: func() time.Time { return at3am },
				OnEvent: func(ev rollout.Event) { f.events = append(f.events, ev) }})
			f.e.Idle = idlegate.NewDBOracle(idlegate.DBOptions{QuietThreshold: quiet})
			f.st = f.e.State()
			um := f.e.Units.(*rollouttest.UnitManager)
			orig := um.StatusFunc
			um.StatusFunc = func(ctx context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
				us, err := orig(ctx, u)
				us.ActiveSince = f.since[u.User]
				return us, err
			}
			require.NoError(t, f.st.Defer("dana", drainNew))
			tt.setup(t, f, filepath.Join(sim.Dir, "home", "dana", ".t3"))

			res, err := f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
			require.NoError(t, err)
			require.Equal(t, rollout.DrainDone, res.Outcome, res.Line())
			restarted := sim.User("dana").Restarts > 0
			markers, err := f.st.Markers()
			require.NoError(t, err)
			switch tt.want {
			case "migrate":
				require.Equal(t, []string{"dana"}, res.Migrated, res.Line())
				require.True(t, restarted)
				require.Equal(t, drainNew, sim.User("dana").Version)
				require.Empty(t, markers)
			case "wait":
				require.Empty(t, res.Migrated)
				require.Len(t, res.Waiting, 1, res.Line())
				require.False(t, restarted)
				require.Len(t, markers, 1)
			case "clear":
				require.Empty(t, res.Migrated)
				require.Len(t, res.Cleared, 1, res.Line())
				require.False(t, restarted)
				require.Empty(t, markers)
				require.Contains(t, f.kinds(), rollout.EventMarkerCleared)
			}
			require.Equal(t, 0, sim.User("alice").Restarts, "the drain touches only deferred units")
		})
	}
}

func TestMigrateIdleOutsideWindowOnlyClears(t *testing.T) {
	f := newDrain(t, "bob", "carol")
	f.e.Now = func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.Local) }
	f.since["carol"] = time.Now().Add(time.Minute) // restarted since its marker

	res, err := f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.NoError(t, err)
	require.False(t, res.InWindow)
	require.Empty(t, res.Migrated)
	require.Equal(t, []rollout.ClearedMarker{{User: "carol", Why: res.Cleared[0].Why}}, res.Cleared)
	require.Len(t, res.Waiting, 1)
	require.Contains(t, res.Waiting[0], "outside the window 01:00-06:00")
	require.NotNil(t, f.marker(t, "bob"))
	require.Equal(t, 0, f.sim.User("bob").Restarts)

	// A wrap-around window that includes noon lets bob go.
	w, err := rollout.ParseWindow("11:00-02:00")
	require.NoError(t, err)
	res, err = f.e.MigrateIdle(context.Background(), rollout.DrainOptions{Window: w})
	require.NoError(t, err)
	require.Equal(t, []string{"bob"}, res.Migrated, res.Line())
	require.Nil(t, f.marker(t, "bob"))
}

func TestMigrateIdleMigratesIdleAndWaitsForBusy(t *testing.T) {
	f := newDrain(t, "bob", "carol")
	f.sim.SetBusy("carol", true)
	bobDB := f.sim.DBPath("bob")

	res, err := f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitCode())
	require.Equal(t, []string{"bob"}, res.Migrated)
	require.Len(t, res.Waiting, 1)
	require.Contains(t, res.Waiting[0], "carol (1 active turn")
	require.Nil(t, f.marker(t, "bob"))
	require.NotNil(t, f.marker(t, "carol"))
	schema, err := f.sim.DBSchema("bob")
	require.NoError(t, err)
	require.Equal(t, drainNew, schema, "bob's database migrated to the current build")
	require.FileExists(t, bobDB)
	require.Contains(t, f.sim.Calls(), "backup bob "+rollout.DrainLabel, "backup before the restart")
	require.Less(t, slices.Index(f.sim.Calls(), "backup bob "+rollout.DrainLabel), slices.Index(f.sim.Calls(), "restart bob"))

	// Later carol is idle: the next timer run drains her.
	f.sim.SetBusy("carol", false)
	res, err = f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.NoError(t, err)
	require.Equal(t, []string{"carol"}, res.Migrated)
	markers, err := f.st.Markers()
	require.NoError(t, err)
	require.Empty(t, markers)
}

func TestMigrateIdleFrozenStops(t *testing.T) {
	f := newDrain(t, "bob")
	_, err := f.e.SetFreeze("investigating", "ops", 0)
	require.NoError(t, err)
	res, err := f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.NoError(t, err)
	require.Equal(t, rollout.DrainFrozen, res.Outcome)
	require.Equal(t, 0, res.ExitCode())
	require.Contains(t, res.Line(), "FROZEN: investigating")
	require.Equal(t, 0, f.sim.User("bob").Restarts)
	require.NotNil(t, f.marker(t, "bob"))

	// An expired freeze is ignored.
	_, err = f.e.Unfreeze()
	require.NoError(t, err)
	require.NoError(t, f.e.Freezer().Write(rollout.Freeze{Reason: "old", Until: at3am.Add(-time.Minute)}))
	res, err = f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.NoError(t, err)
	require.Equal(t, []string{"bob"}, res.Migrated)
	require.Contains(t, f.kinds(), rollout.EventFreezeExpired)
}

// A failed drain restores the user's database and freezes. It switches the
// fleet's binary back only while no other unit has moved to the current
// build: such a unit's database is migrated, and the older build cannot
// read it (the 2026-06-09 outage, on everyone but the drained user).
func TestMigrateIdleFailureRecoversAndStops(t *testing.T) {
	tests := []struct {
		name          string
		lastGood      string
		knownVersions bool // the unit manager reports running versions
		aliceMoved    bool // alice runs the current build (else she is deferred too, on drainOld)
		outcome       rollout.DrainOutcome
		current       string
	}{
		// nobody else moved, last-good differs from the active build: back to it.
		{"back to last-good", drainOld, false, false, rollout.DrainRolledBack, drainOld},
		// nobody else moved, last-good is the active build: back to the build bob was running.
		{"back to the unit's build", drainNew, true, false, rollout.DrainRolledBack, drainOld},
		// alice already runs the current build: switching back would strand
		// her, so the build stays; bob's database is restored, his unit
		// restarted on the same build (which migrates it again), still
		// broken: ROLLBACK FAILED, frozen.
		{"others moved, last-good older", drainOld, false, true, rollout.DrainRollbackFailed, drainNew},
		{"others moved, unit's build known", drainNew, true, true, rollout.DrainRollbackFailed, drainNew},
		// nothing older to go back to: the same.
		{"no older build", drainNew, false, false, rollout.DrainRollbackFailed, drainNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newDrain(t, "bob", "carol")
			if !tt.aliceMoved {
				require.NoError(t, f.sim.AddUser("alice", &rollouttest.SimUser{Running: true, Version: drainOld, DBSize: 10}))
				require.NoError(t, f.st.Defer("alice", drainNew))
				f.sim.SetBusy("alice", true)
			}
			require.NoError(t, f.st.SetLastGood(tt.lastGood))
			f.sim.FailCanary(drainNew, "bob")
			if !tt.knownVersions {
				f.e.Units.(*rollouttest.UnitManager).RunningVersionFunc = nil
			}
			before, err := os.ReadFile(f.sim.DBPath("bob"))
			require.NoError(t, err)

			res, err := f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
			require.Error(t, err)
			require.Equal(t, tt.outcome, res.Outcome, res.Line())
			require.Equal(t, 1, res.ExitCode())
			prefix := map[rollout.DrainOutcome]string{rollout.DrainRolledBack: "rolled back: ", rollout.DrainRollbackFailed: "ROLLBACK FAILED: "}[tt.outcome]
			require.True(t, strings.HasPrefix(res.Line(), prefix+rollout.DrainLabel+" bob failed"), "the alert prefix once, then what failed: %s", res.Line())
			if tt.outcome == rollout.DrainRolledBack {
				after, err := os.ReadFile(f.sim.DBPath("bob"))
				require.NoError(t, err)
				require.Equal(t, before, after, "bob's database is byte-identical to before the drain")
			}
			require.Contains(t, f.sim.Calls(), "restore bob")
			fr, err := f.e.Freezer().Read()
			require.NoError(t, err)
			require.NotNil(t, fr, "the fleet is frozen")
			require.Contains(t, fr.Reason, rollout.DrainLabel+" bob failed")
			require.Equal(t, tt.current, f.sim.Current())
			require.Equal(t, 0, f.sim.User("carol").Restarts, "the drain stops at the first failure")
			require.NotNil(t, f.marker(t, "bob"), "bob still needs the build")
			require.NotNil(t, f.marker(t, "carol"))
			if tt.aliceMoved {
				schema, err := f.sim.DBSchema("alice")
				require.NoError(t, err)
				require.Equal(t, f.sim.Current(), schema, "alice's database is one the active build reads")
				require.Contains(t, fr.Reason, "alice")
			}
		})
	}
}

func TestMigrateIdleReportsStaleMarkers(t *testing.T) {
	f := newDrain(t, "bob")
	f.sim.SetBusy("bob", true)
	old := at3am.Add(-10 * 24 * time.Hour)
	p := filepath.Join(f.st.Dir, rollout.DeferredDir, "bob")
	require.NoError(t, os.Chtimes(p, old, old))

	res, err := f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.NoError(t, err)
	require.Len(t, res.Stale, 1)
	require.Equal(t, "bob", res.Stale[0].User)
	require.Contains(t, f.kinds(), rollout.EventStaleMarker)
	require.Contains(t, res.Line(), "stale=1")

	res, err = f.e.MigrateIdle(context.Background(), rollout.DrainOptions{StaleAfter: 30 * 24 * time.Hour})
	require.NoError(t, err)
	require.Empty(t, res.Stale)
}

func TestMigrateIdleTakesTheLock(t *testing.T) {
	f := newDrain(t, "bob")
	l, err := f.e.Lock(context.Background(), "run")
	require.NoError(t, err)
	defer l.Release()
	res, err := f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.NoError(t, err)
	require.Equal(t, rollout.DrainLocked, res.Outcome)
	require.Contains(t, res.Line(), "command=run")
	require.Equal(t, 0, f.sim.User("bob").Restarts)
}

func TestMigrateIdleLeavesAnUnfinishedRun(t *testing.T) {
	f := newDrain(t, "bob")
	require.NoError(t, f.st.WriteJournal(&rollout.Journal{Target: drainNew, Previous: drainOld, Phase: rollout.PhaseCanary}))
	res, err := f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.NoError(t, err)
	require.Equal(t, rollout.DrainPendingRun, res.Outcome)
	require.Equal(t, 0, f.sim.User("bob").Restarts)
}

// The drain checks the verification path on a user already on the current
// build (alice; never bob, deferred) before its first restart: with the path
// broken, nothing restarts, the marker stays and nothing is frozen.
func TestMigrateIdleChecksThePathFirst(t *testing.T) {
	for _, broken := range []bool{false, true} {
		t.Run(map[bool]string{false: "path works", true: "path broken"}[broken], func(t *testing.T) {
			f := newDrain(t, "bob")
			if broken {
				f.sim.FailCanary(drainNew, "alice")
			}
			res, err := f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
			if !broken {
				require.NoError(t, err)
				require.Equal(t, []string{"bob"}, res.Migrated)
				i := slices.Index(f.kinds(), rollout.EventPathChecked)
				require.GreaterOrEqual(t, i, 0)
				require.Equal(t, "alice", f.events[i].User, "checked on a user already on the current build")
				require.Less(t, i, slices.Index(f.kinds(), rollout.EventRestarted))
				return
			}
			require.ErrorIs(t, err, rollout.ErrPathBroken)
			require.Equal(t, rollout.DrainFailed, res.Outcome)
			require.Equal(t, 1, res.ExitCode())
			require.NotContains(t, f.sim.Calls(), "restart bob")
			require.NotNil(t, f.marker(t, "bob"), "bob still waits")
			fr, err := os.ReadFile(filepath.Join(f.sim.Dir, "t3-autoupdate.freeze"))
			require.ErrorIs(t, err, os.ErrNotExist, "not frozen: %s", fr)
		})
	}
}

// A run whose every unit was busy leaves the build active but unproven
// (last-good unchanged); the first verified drain proves it.
func TestMigrateIdleProvesAnUnprovenBuild(t *testing.T) {
	f := newDrain(t, "bob")
	require.NoError(t, f.st.SetLastGood(drainOld))
	res, err := f.e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.NoError(t, err)
	require.Equal(t, []string{"bob"}, res.Migrated)
	lg, err := f.st.LastGood()
	require.NoError(t, err)
	require.Equal(t, drainNew, lg)
}

// A drain stopped after carol moved (her marker stays: the restart was not
// verified) and a later drain's failure on abe: carol runs the active build
// (restarted after her marker was written), so the shared binary is not
// switched back under her.
func TestMigrateIdleDoesNotSwitchBackUnderAUserAnInterruptedDrainMoved(t *testing.T) {
	sim, err := rollouttest.NewSim(t.TempDir(), drainNew)
	require.NoError(t, err)
	now := at3am
	e := sim.Engine(rollout.Options{Now: func() time.Time { return now }})
	st := e.State()
	require.NoError(t, st.SetLastGood(drainOld))
	for i, u := range []string{"abe", "carol"} {
		require.NoError(t, sim.AddUser(u, &rollouttest.SimUser{Running: true, Version: drainOld, DBSize: 50 * (i + 1)}))
		require.NoError(t, st.Defer(u, drainNew))
	}
	um := e.Units.(*rollouttest.UnitManager)
	status := um.StatusFunc
	started := map[string]time.Time{}
	um.StatusFunc = func(ctx context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
		us, err := status(ctx, u)
		us.ActiveSince = started[u.User]
		return us, err
	}
	restart := um.RestartFunc
	um.RestartFunc = func(ctx context.Context, u rollout.Unit) error {
		started[u.User] = time.Now()
		return restart(ctx, u)
	}
	um.RunningVersionFunc = nil // only the unit manager's start times tell
	sim.SetBusy("abe", true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := wrapSim(sim, e)
	w.verify = func(ctx context.Context, user string, next func() error) error {
		if user != "carol" {
			return next()
		}
		cancel() // systemctl stop, mid-verification
		return fmt.Errorf("pairing %s: %w", user, ctx.Err())
	}
	_, err = e.MigrateIdle(ctx, rollout.DrainOptions{})
	require.ErrorIs(t, err, rollout.ErrInterrupted)
	schema, _ := sim.DBSchema("carol")
	require.Equal(t, drainNew, schema, "carol moved before the signal")

	w.verify = nil
	sim.SetBusy("abe", false)
	sim.FailCanary(drainNew, "abe")
	_, err = e.MigrateIdle(context.Background(), rollout.DrainOptions{})
	require.Error(t, err)
	require.Equal(t, drainNew, sim.Current(), "not switched back under carol, whose database is %s", schema)
}
