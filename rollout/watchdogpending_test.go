package rollout_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

// A run crashed after activating the target, before anyone's restart: its
// journal waits for the next run, and the binary is already the target.
// The watchdog stands down while the journal waits, as the drainer does:
// a wedged unit it restarted would move onto the target behind the
// journal's back, and when the resumed canary then failed, the rollback
// (which restores the users the journal names) would leave that unit on
// the target's migrated database while the binary went back.
func TestWatchdogLeavesAPendingRunsUnitsAlone(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{CrashAfter: func(s string) bool { return s == "activate" }})
	_, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrCrashed)
	e.CrashAfter = nil
	j, err := e.State().Journal()
	require.NoError(t, err)
	require.NotNil(t, j, "a journal waits for the next run")
	require.Equal(t, v2, sim.Current())

	// zed's instance wedges: it answers neither the probe nor the version
	// question until it is restarted.
	var mu sync.Mutex
	wedged := map[string]bool{"zed": true}
	um := e.Units.(*rollouttest.UnitManager)
	restart, version := um.RestartFunc, um.RunningVersionFunc
	um.RestartFunc = func(ctx context.Context, u rollout.Unit) error {
		mu.Lock()
		delete(wedged, u.User)
		mu.Unlock()
		return restart(ctx, u)
	}
	um.RunningVersionFunc = func(ctx context.Context, u rollout.Unit) (string, error) {
		mu.Lock()
		w := wedged[u.User]
		mu.Unlock()
		if w {
			return "", nil
		}
		return version(ctx, u)
	}
	wd := &rollout.Watchdog{Engine: e,
		Probe: rollout.ProbeFunc(func(_ context.Context, m rollout.Member) error {
			mu.Lock()
			defer mu.Unlock()
			if wedged[m.Unit.User] {
				return errWedged
			}
			return nil
		}),
		WatchdogOptions: rollout.WatchdogOptions{Dir: filepath.Join(sim.Dir, "run", "t3-watchdog"), Failures: 1, Grace: -1}}
	wres, werr := wd.Tick(context.Background())
	require.NoError(t, werr)
	require.Contains(t, wres.Lines(), "watchdog stopped: an unfinished run ("+v1+" -> "+v2+", phase canary) waits for `updater run`; no unit is restarted until it is finished")

	sim.FailCanary(v2, "alice")
	res, err := e.Run(context.Background())
	require.Error(t, err, res.Line())
	require.Equal(t, v1, sim.Current(), res.Line())
	for _, u := range sim.Users() {
		schema, err := sim.DBSchema(u)
		require.NoError(t, err)
		require.Equal(t, v1, schema, "%s's database matches the build the fleet went back to (watchdog tick: %v; run: %s); %s's calls: %v",
			u, werr, res.Line(), u, callsFor(sim, u))
	}
}
