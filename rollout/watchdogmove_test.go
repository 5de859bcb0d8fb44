package rollout_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
	"github.com/t3fleet/t3fleet/statebackup"
)

// The watchdog's restarts where a backup is at stake: a failed backup, and
// units off the active build (deferred, or whose version is unknown).

func TestWatchdogRestartsEvenWhenTheBackupFails(t *testing.T) {
	f := newWD(t)
	bk := f.e.Backups.(*rollouttest.Backuper)
	bk.BackupFunc = func(context.Context, statebackup.Target, string) (statebackup.Snapshot, error) {
		return statebackup.Snapshot{}, errors.New("database is locked")
	}
	f.down["bob"] = errWedged
	for range 3 {
		f.tick(t)
	}
	require.Equal(t, 1, f.sim.User("bob").Restarts, "a wedged instance is not left wedged for want of a backup")
	require.Equal(t, 1, f.count(rollout.EventBackupSkipped))
	fr, err := f.e.Freezer().Read()
	require.NoError(t, err)
	require.Nil(t, fr)

	// And when that restart does not help either: freeze, restart once more.
	f.sim.FailCanary(drainNew, "bob")
	f.clock = f.clock.Add(time.Minute)
	for range 2 {
		f.tick(t)
	}
	_, err = f.wd.Tick(context.Background())
	require.ErrorIs(t, err, rollout.ErrRollbackFailed)
	fr, err = f.e.Freezer().Read()
	require.NoError(t, err)
	require.NotNil(t, fr)
	require.Contains(t, fr.Reason, "no backup")
}

// A wedged unit that was deferred still runs an older build: its restart
// starts the active one and migrates its database. The watchdog treats it
// as the drain would: the backup and any failure name the active build, a
// verified restart clears the marker, and a failure does not switch the
// shared binary back under users already on the active build.
func TestWatchdogRestartOfADeferredUnitMovesIt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fails bool
	}{{"the active build works for carol", false}, {"it does not", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newWD(t)
			require.NoError(t, f.sim.AddUser("carol", &rollouttest.SimUser{Running: true, Version: drainOld, DBSize: 50}))
			require.NoError(t, f.e.State().Defer("carol", drainNew))
			require.NoError(t, f.e.State().SetLastGood(drainNew))
			if tc.fails {
				f.sim.FailCanary(drainNew, "carol")
			}
			f.down["carol"] = errWedged
			f.tick(t)
			f.tick(t)
			res, err := f.wd.Tick(context.Background())
			require.Contains(t, f.sim.Calls(), "backup carol "+rollout.WatchdogLabel)
			mk, merr := f.e.State().Marker("carol")
			require.NoError(t, merr)
			if !tc.fails {
				require.NoError(t, err)
				require.Equal(t, rollout.WatchdogRestarted, f.action(res, "carol"))
				require.Equal(t, drainNew, f.sim.User("carol").Version)
				require.Nil(t, mk, "carol has moved: nothing left to drain")
				return
			}
			require.ErrorIs(t, err, rollout.ErrRollbackFailed)
			fr, ferr := f.e.Freezer().Read()
			require.NoError(t, ferr)
			require.NotNil(t, fr)
			require.Contains(t, fr.Reason, "failed on "+drainNew, "the build that failed carol is the active one")
			require.Equal(t, drainNew, f.sim.Current(), "alice and bob keep the build their databases need")
			require.NotNil(t, mk, "carol still needs a working build")
		})
	}
}

// A wedged deferred unit holding its database locked: the backup fails
// while it runs. Its restart would migrate the database (it moves to the
// active build), so it is never done without a backup: the unit is stopped,
// which lets go of the database, and backed up then; if that fails too, the
// unit is left stopped, its database as it was.
func TestWatchdogNeverMovesADeferredUnitWithoutABackup(t *testing.T) {
	for _, tc := range []struct {
		name        string
		failStopped bool // the backup fails even with the unit stopped
		pathBroken  bool // nobody else pairs: the restart would go unverified
	}{
		{"backed up once stopped", false, false},
		{"no backup at all", true, false},
		{"no backup at all, path broken", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newWD(t)
			require.NoError(t, f.sim.AddUser("carol", &rollouttest.SimUser{Running: true, Version: drainOld, DBSize: 50}))
			require.NoError(t, f.e.State().Defer("carol", drainNew))
			failBackupOf(f.e, func(tg statebackup.Target) bool {
				return tg.User == "carol" && (f.sim.User("carol").Running || tc.failStopped)
			}, errors.New("database is locked"))
			if tc.pathBroken {
				f.sim.FailCanary(drainNew, "alice")
				f.sim.FailCanary(drainNew, "bob")
			}
			f.down["carol"] = errWedged
			f.tick(t)
			f.tick(t)
			_, err := f.wd.Tick(context.Background())
			schema, serr := f.sim.DBSchema("carol")
			require.NoError(t, serr)
			if !tc.failStopped {
				require.NoError(t, err)
				require.Contains(t, f.sim.Calls(), "backup carol "+rollout.WatchdogLabel)
				require.Equal(t, drainNew, f.sim.User("carol").Version)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "left stopped")
			require.False(t, f.sim.User("carol").Running)
			require.Equal(t, drainOld, schema, "carol's database was not migrated without a backup")
		})
	}
}

// A unit the engine cannot place (its line of the user map is bad) is a
// provisioning problem of its own: the watchdog still watches the others.
func TestWatchdogWatchesTheOthersWhenOneUnitCannotBePlaced(t *testing.T) {
	f := newWD(t)
	home := f.e.Locator
	f.e.Locator = &rollouttest.Locator{LocateFunc: func(ctx context.Context, u rollout.Unit) (t3fleet.Instance, error) {
		if u.User == "alice" {
			return t3fleet.Instance{}, errors.New("not among the good lines of the user map")
		}
		return home.Locate(ctx, u)
	}}
	f.down["bob"] = errWedged
	f.tick(t)
	f.tick(t)
	res := f.tick(t)
	require.Equal(t, rollout.WatchdogProvisioning, f.action(res, "alice"))
	require.Equal(t, rollout.WatchdogRestarted, f.action(res, "bob"), "bob is still watched, and restarted")
}

// A wedged instance does not answer its version either: the watchdog must
// still treat a deferred unit's restart as the move it is (backup first, or
// left stopped), whatever the running version it could not learn.
func TestWatchdogMovesAWedgedDeferredUnitWhoseVersionIsUnknown(t *testing.T) {
	f := newWD(t)
	require.NoError(t, f.sim.AddUser("carol", &rollouttest.SimUser{Running: true, Version: drainOld, DBSize: 50}))
	require.NoError(t, f.e.State().Defer("carol", drainNew))
	um := f.e.Units.(*rollouttest.UnitManager)
	rv := um.RunningVersionFunc
	um.RunningVersionFunc = func(ctx context.Context, u rollout.Unit) (string, error) {
		if u.User == "carol" {
			return "", errors.New("context deadline exceeded") // wedged: no answer
		}
		return rv(ctx, u)
	}
	failBackupOf(f.e, func(tg statebackup.Target) bool { return tg.User == "carol" }, errors.New("database is locked"))
	f.down["carol"] = errWedged
	f.tick(t)
	f.tick(t)
	_, err := f.wd.Tick(context.Background())
	require.ErrorContains(t, err, "left stopped")
	schema, serr := f.sim.DBSchema("carol")
	require.NoError(t, serr)
	require.Equal(t, drainOld, schema, "carol's database was not migrated without a backup (calls: %v)", f.sim.Calls())
}

// alice cannot be placed (a bad line of the user map) and may run the
// active build: the watchdog's recovery of a deferred unit does not switch
// the shared binary back under her.
func TestWatchdogDoesNotSwitchBackWhileAUnitIsUnplaced(t *testing.T) {
	f := newWD(t)
	require.NoError(t, f.sim.AddUser("carol", &rollouttest.SimUser{Running: true, Version: drainOld, DBSize: 50}))
	require.NoError(t, f.e.State().Defer("carol", drainNew))
	require.NoError(t, f.e.State().Defer("bob", drainNew))
	require.NoError(t, f.e.State().SetLastGood(drainOld))
	home := f.e.Locator
	f.e.Locator = &rollouttest.Locator{LocateFunc: func(ctx context.Context, u rollout.Unit) (t3fleet.Instance, error) {
		if u.User == "alice" {
			return t3fleet.Instance{}, errors.New("not among the good lines of the user map")
		}
		return home.Locate(ctx, u)
	}}
	f.sim.FailCanary(drainNew, "carol")
	f.down["carol"] = errWedged
	f.tick(t)
	f.tick(t)
	_, err := f.wd.Tick(context.Background())
	require.Error(t, err)
	require.Equal(t, drainNew, f.sim.Current(), "the binary stays: alice's database may need it")
}
