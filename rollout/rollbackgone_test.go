package rollout_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
)

// A rollback cut short by a crash is finished by the next run, which finds
// the units again through the unit manager. A unit moved onto the target
// that the manager no longer lists (systemd unloads a stopped unit that
// nothing wants) still has its database migrated past the build the fleet
// goes back to: the rollback cannot put it back, and must say so (rollback
// failed, in the freeze too) instead of reporting a clean rollback.
func TestResumedRollbackReportsAMovedUnitItCannotFind(t *testing.T) {
	sim := newSim(t)
	sim.FailCanary(v2, "carol")
	e := sim.Engine(rollout.Options{CrashAfter: func(s string) bool { return s == "rollback-freeze" }})
	_, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrCrashed)
	j, err := e.State().Journal()
	require.NoError(t, err)
	require.NotNil(t, j)
	require.NotEmpty(t, j.Verified, "someone was moved before carol failed")
	gone := j.Verified[0]

	list := sim.UnitManager()
	all := list.UnitsFunc
	list.UnitsFunc = func(ctx context.Context) ([]rollout.Unit, error) {
		units, err := all(ctx)
		return slices.DeleteFunc(units, func(u rollout.Unit) bool { return u.User == gone }), err
	}
	e.Units = list
	e.CrashAfter = nil
	res, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrRollbackFailed, res.Line())
	assert.Contains(t, err.Error(), gone)
	schema, serr := sim.DBSchema(gone)
	require.NoError(t, serr)
	assert.Equal(t, v2, schema, "its database is still the target's (nothing could restore it)")
	fr, ferr := e.Freezer().Read()
	require.NoError(t, ferr)
	require.NotNil(t, fr)
	assert.Contains(t, fr.Reason, gone, "the freeze says whose database was not put back")
}
