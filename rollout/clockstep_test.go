package rollout_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

// A deferral marker is settled when its unit was started after it was
// written; the two times come from different clocks readings (the unit
// manager's start time, the marker file's mtime). bob's unit started while
// the clock ran two hours fast (a VM booted before NTP stepped its clock
// back): its start time lies an hour after the marker the run writes when
// it defers him. The drain used to take that for a restart after the
// marker, clear it, and never move bob, who kept running the old build with
// nothing left to say so.
func TestDeferralMarkerSurvivesAClockStepBack(t *testing.T) {
	sim := newSim(t)
	sim.SetBusy("bob", true)
	bobStarted := time.Now().Add(time.Hour)
	e := sim.Engine(rollout.Options{OperatorUser: "alice"})
	um := e.Units.(*rollouttest.UnitManager)
	status := um.StatusFunc
	um.StatusFunc = func(ctx context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
		us, err := status(ctx, u)
		if u.User == "bob" && sim.User("bob").Restarts == 0 {
			us.ActiveSince = bobStarted
		}
		return us, err
	}
	um.RunningVersionFunc = nil // only the unit manager's start times tell

	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"bob"}, res.Deferred, res.Line())

	drain := rollout.DrainOptions{Window: rollout.AlwaysWindow}
	dres, err := e.MigrateIdle(context.Background(), drain)
	require.NoError(t, err)
	require.Empty(t, dres.Cleared, "bob was never restarted: %s", dres.Line())
	m, err := e.State().Marker("bob")
	require.NoError(t, err)
	require.NotNil(t, m, "bob still needs %s", v2)

	sim.SetBusy("bob", false)
	dres, err = e.MigrateIdle(context.Background(), drain)
	require.NoError(t, err)
	require.Equal(t, []string{"bob"}, dres.Migrated, dres.Line())
	require.Equal(t, v2, sim.User("bob").Version)
}
