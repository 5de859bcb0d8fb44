package rollout_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
)

// `updater status` shows the units the watchdog stands down for, and until
// when, and the ones failing their probes; not the ones it has let go of.
func TestWatchdogStatusLines(t *testing.T) {
	f := newWD(t)
	f.down["bob"] = errWedged
	for range 3*3 + 3 { // restarts at 12:02, 12:05, 12:08; the cap at 12:11
		f.tick(t)
		f.clock = f.clock.Add(time.Minute)
	}
	require.Equal(t, 1, f.count(rollout.EventWatchdogExhausted))
	f.down["alice"] = errors.New("connection refused")
	f.tick(t)

	lines, err := f.wd.StatusLines([]string{"alice", "bob", "carol"})
	require.NoError(t, err)
	require.Equal(t, []string{
		"watchdog alice: 1 failed probe(s) in a row (a restart at 3); last: connection refused",
		"WATCHDOG-EXHAUSTED bob: 3 restarts in the last 30m0s, standing down until 2026-11-24T12:32:00Z; last: context deadline exceeded",
	}, lines)

	// The oldest restart leaves the window: the watchdog acts on bob again
	// at its next tick, though his counters still say the cap was hit.
	f.clock = f.clock.Add(30 * time.Minute)
	lines, err = f.wd.StatusLines([]string{"bob"})
	require.NoError(t, err)
	require.Equal(t, []string{"watchdog bob: 4 failed probe(s) in a row (a restart at 3); last: context deadline exceeded"}, lines)

	_, err = f.wd.StatusLines([]string{"../etc"})
	require.Error(t, err, "a hostile name never reaches a path")
}

// Restarts alone are not a stand-down: a unit whose third restart fixed it
// answers, and status says so. With more restarts in the window than the
// cap (the cap was lowered), the stand-down lasts until enough of them
// have left the window, not only the oldest.
func TestWatchdogStatusLinesAfterRestarts(t *testing.T) {
	f := newWD(t)
	f.down["bob"] = errWedged
	for range 3 * 3 { // three restarts, at 12:02, 12:05, 12:08
		f.tick(t)
		f.clock = f.clock.Add(time.Minute)
	}
	delete(f.down, "bob")
	f.tick(t)
	lines, err := f.wd.StatusLines([]string{"bob"})
	require.NoError(t, err)
	require.Equal(t, []string{"watchdog bob: answering; 3 restart(s) in the last 30m0s"}, lines)

	write := func(c rollout.UnitCounters) {
		b, err := json.Marshal(c)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(f.wd.Dir, "bob.json"), b, 0o644))
	}
	at := func(min int) time.Time { return f.clock.Add(time.Duration(min) * time.Minute) }
	write(rollout.UnitCounters{Failures: 5, Exhausted: true, LastError: "x",
		Restarts: []time.Time{at(-9), at(-7), at(-5), at(-3)}})
	lines, err = f.wd.StatusLines([]string{"bob"})
	require.NoError(t, err)
	require.Equal(t, []string{"WATCHDOG-EXHAUSTED bob: 4 restarts in the last 30m0s, standing down until " +
		at(-7).Add(30*time.Minute).UTC().Format(time.RFC3339) + "; last: x"}, lines)

	// The stand-down ends when it says: one restart fewer than the cap left.
	f.clock = at(-7).Add(30 * time.Minute)
	f.down["bob"] = errWedged
	res := f.tick(t)
	require.Equal(t, rollout.WatchdogRestarted, f.action(res, "bob"), res.Lines())
}
