package rollout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

type wdFixture struct {
	sim   *rollouttest.Sim
	e     *rollout.Engine
	wd    *rollout.Watchdog
	clock time.Time
	log   bytes.Buffer

	mu     sync.Mutex
	down   map[string]error     // probe result per user
	probed map[string]int       // probes per user
	since  map[string]time.Time // ActiveSince per user; zero: unknown
	events []rollout.Event
}

func newWD(t *testing.T) *wdFixture {
	t.Helper()
	sim, err := rollouttest.NewSim(t.TempDir(), drainNew, "alice", "bob")
	require.NoError(t, err)
	f := &wdFixture{sim: sim, clock: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC),
		down: map[string]error{}, probed: map[string]int{}, since: map[string]time.Time{}}
	f.e = sim.Engine(rollout.Options{Now: func() time.Time { return f.clock },
		Logger: slog.New(slog.NewTextHandler(&f.log, nil)),
		OnEvent: func(ev rollout.Event) {
			f.mu.Lock()
			f.events = append(f.events, ev)
			f.mu.Unlock()
		}})
	um := f.e.Units.(*rollouttest.UnitManager)
	orig := um.StatusFunc
	um.StatusFunc = func(ctx context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
		us, err := orig(ctx, u)
		f.mu.Lock()
		us.ActiveSince = f.since[u.User]
		f.mu.Unlock()
		return us, err
	}
	f.wd = &rollout.Watchdog{Engine: f.e,
		Probe: rollout.ProbeFunc(func(_ context.Context, m rollout.Member) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.probed[m.Unit.User]++
			return f.down[m.Unit.User]
		}),
		WatchdogOptions: rollout.WatchdogOptions{Dir: filepath.Join(sim.Dir, "run", "t3-watchdog")}}
	return f
}

func (f *wdFixture) tick(t *testing.T) rollout.WatchdogResult {
	t.Helper()
	res, err := f.wd.Tick(context.Background())
	require.NoError(t, err)
	return res
}

func (f *wdFixture) action(res rollout.WatchdogResult, user string) rollout.WatchdogAction {
	for _, u := range res.Units {
		if u.User == user {
			return u.Action
		}
	}
	return ""
}

func (f *wdFixture) count(kind rollout.EventKind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ev := range f.events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

var errWedged = errors.New("context deadline exceeded")

func TestWatchdogRestartsAfterNConsecutiveFailures(t *testing.T) {
	f := newWD(t)
	f.down["bob"] = errWedged
	for i := 1; i <= 2; i++ {
		res := f.tick(t)
		require.Equal(t, rollout.WatchdogFailing, f.action(res, "bob"))
		require.Equal(t, rollout.WatchdogOK, f.action(res, "alice"))
		c, err := f.wd.Counters("bob")
		require.NoError(t, err)
		require.Equal(t, i, c.Failures, "failures persist between ticks")
		f.clock = f.clock.Add(time.Minute)
	}
	require.Equal(t, 0, f.sim.User("bob").Restarts)
	res := f.tick(t)
	require.Equal(t, rollout.WatchdogRestarted, f.action(res, "bob"), res.Lines())
	require.Equal(t, 1, f.sim.User("bob").Restarts)
	require.Equal(t, 0, f.sim.User("alice").Restarts)
	require.Contains(t, f.sim.Calls(), "backup bob "+rollout.WatchdogLabel)
	c, err := f.wd.Counters("bob")
	require.NoError(t, err)
	require.Equal(t, 0, c.Failures)
	require.Equal(t, []time.Time{f.clock}, c.Restarts)

	// The counters file is JSON, written whole.
	b, err := os.ReadFile(filepath.Join(f.wd.Dir, "bob.json"))
	require.NoError(t, err)
	var onDisk rollout.UnitCounters
	require.NoError(t, json.Unmarshal(b, &onDisk))
	tmp, _ := filepath.Glob(filepath.Join(f.wd.Dir, ".*tmp*"))
	require.Empty(t, tmp)
}

func TestWatchdogSuccessResetsFailures(t *testing.T) {
	f := newWD(t)
	f.down["bob"] = errWedged
	f.tick(t)
	f.tick(t)
	delete(f.down, "bob")
	f.tick(t)
	f.down["bob"] = errWedged
	f.tick(t)
	f.tick(t)
	require.Equal(t, 0, f.sim.User("bob").Restarts, "failures must be consecutive")
}

func TestWatchdogGraceInactiveProvisioning(t *testing.T) {
	f := newWD(t)
	f.down["alice"] = errWedged
	f.since["alice"] = f.clock.Add(-119 * time.Second)
	f.down["bob"] = errors.Join(rollout.ErrProvisioning, errors.New("no T3_PORT in /etc/t3-serve/bob.env"))
	for range 5 {
		res := f.tick(t)
		require.Equal(t, rollout.WatchdogGrace, f.action(res, "alice"))
		require.Equal(t, rollout.WatchdogProvisioning, f.action(res, "bob"))
	}
	require.Equal(t, 0, f.probed["alice"], "no probe inside the grace period")
	require.Equal(t, 0, f.sim.User("alice").Restarts+f.sim.User("bob").Restarts)
	require.Equal(t, 5, f.count(rollout.EventProvisioning))
	c, err := f.wd.Counters("bob")
	require.NoError(t, err)
	require.Equal(t, 0, c.Failures, "a provisioning problem is not a wedge")

	// Past the grace period the failures count.
	f.since["alice"] = f.clock.Add(-121 * time.Second)
	for range 3 {
		f.tick(t)
	}
	require.Equal(t, 1, f.sim.User("alice").Restarts)

	// A stopped unit is not probed.
	require.NoError(t, f.e.Units.Stop(context.Background(), rollout.Unit{Name: "t3-serve@alice.service", User: "alice"}))
	n := f.probed["alice"]
	res := f.tick(t)
	require.Equal(t, rollout.WatchdogInactive, f.action(res, "alice"))
	require.Equal(t, n, f.probed["alice"])
}

func TestWatchdogCapStandsDown(t *testing.T) {
	f := newWD(t)
	f.down["bob"] = errWedged // a restart never helps
	for range 3 * 3 {
		f.tick(t)
		f.clock = f.clock.Add(time.Minute)
	}
	require.Equal(t, 3, f.sim.User("bob").Restarts)
	require.Equal(t, 0, f.count(rollout.EventWatchdogExhausted))

	// The cap: 3 restarts in the trailing 30 minutes.
	for range 6 {
		res := f.tick(t)
		f.clock = f.clock.Add(time.Minute)
		if f.action(res, "bob") != rollout.WatchdogFailing {
			require.Equal(t, rollout.WatchdogExhausted, f.action(res, "bob"))
		}
	}
	require.Equal(t, 3, f.sim.User("bob").Restarts)
	require.Equal(t, 1, f.count(rollout.EventWatchdogExhausted), "logged once per exhaustion, not every minute")
	require.Contains(t, f.log.String(), "WATCHDOG-EXHAUSTED")
	require.Contains(t, f.log.String(), "user=bob")

	// Once the first restart leaves the window, it may act again.
	f.clock = f.clock.Add(30 * time.Minute)
	res := f.tick(t)
	require.Equal(t, rollout.WatchdogRestarted, f.action(res, "bob"), res.Lines())
	require.Equal(t, 4, f.sim.User("bob").Restarts)
}

func TestWatchdogIgnoresFreezeButTakesLock(t *testing.T) {
	f := newWD(t)
	_, err := f.e.SetFreeze("bad nightly", "ops", 0)
	require.NoError(t, err)
	f.down["bob"] = errWedged
	for range 3 {
		f.tick(t)
	}
	require.Equal(t, 1, f.sim.User("bob").Restarts, "the freeze is about versions, not restarts")

	l, err := f.e.Lock(context.Background(), "run")
	require.NoError(t, err)
	defer l.Release()
	res := f.tick(t)
	require.True(t, res.Locked)
	require.Contains(t, strings.Join(res.Lines(), "\n"), "command=run")
}

func TestWatchdogFailedRestartRecovers(t *testing.T) {
	f := newWD(t)
	f.down["bob"] = errWedged
	f.sim.FailCanary(drainNew, "bob") // pairing broken after the restart too
	f.tick(t)
	f.tick(t)
	res, err := f.wd.Tick(context.Background())
	require.ErrorIs(t, err, rollout.ErrRollbackFailed)
	require.Equal(t, rollout.WatchdogRecovered, f.action(res, "bob"))
	fr, err := f.e.Freezer().Read()
	require.NoError(t, err)
	require.NotNil(t, fr)
	require.Contains(t, fr.Reason, rollout.WatchdogLabel+" bob failed")
	require.Contains(t, f.sim.Calls(), "restore bob")
}

// A wedged unit while nobody pairs through the dispatch: it is restarted all
// the same, unverified, and nothing is frozen for the dispatch's fault.
func TestWatchdogRestartsUnverifiedWhenThePathIsBroken(t *testing.T) {
	f := newWD(t)
	f.down["bob"] = errWedged
	f.sim.FailCanary(drainNew, "alice")
	f.sim.FailCanary(drainNew, "bob")
	f.tick(t)
	f.tick(t)
	res, err := f.wd.Tick(context.Background())
	require.ErrorIs(t, err, rollout.ErrPathBroken)
	require.Equal(t, rollout.WatchdogRestarted, f.action(res, "bob"))
	require.Contains(t, res.Reason, "VERIFY-PATH BROKEN")
	require.Equal(t, 1, f.sim.User("bob").Restarts)
	require.Equal(t, 0, f.sim.User("alice").Restarts)
	fr, err := f.e.Freezer().Read()
	require.NoError(t, err)
	require.Nil(t, fr, "not frozen")
	require.NotContains(t, f.sim.Calls(), "restore bob")
	require.Equal(t, 1, f.count(rollout.EventPathBroken))
}

func TestWatchdogSuspectBuildInStatus(t *testing.T) {
	f := newWD(t)
	st := f.e.State()
	require.NoError(t, st.SetLastGood(drainNew))
	rolledOut := time.Now()
	f.clock = rolledOut.Add(2 * time.Hour)
	f.down["bob"] = errWedged
	for range 3 {
		f.tick(t)
	}
	rs, err := st.WatchdogRestarts()
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.Equal(t, drainNew, rs[0].Version)
	require.Equal(t, "bob", rs[0].User)

	lines, err := f.e.DrainWatchdogLines(0)
	require.NoError(t, err)
	require.Len(t, lines, 1)
	require.Contains(t, lines[0], "SUSPECT build "+drainNew+": 1 watchdog restart(s)")
	require.Contains(t, lines[0], "users: bob")
}

func TestSuspectBuilds(t *testing.T) {
	ro := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		rs   []rollout.WatchdogRestart
		want int
	}{
		{"within 24h", []rollout.WatchdogRestart{{Time: ro.Add(23 * time.Hour), Version: "v", User: "a", RolledOut: ro}}, 1},
		{"after 24h", []rollout.WatchdogRestart{{Time: ro.Add(25 * time.Hour), Version: "v", User: "a", RolledOut: ro}}, 0},
		{"rollout unknown", []rollout.WatchdogRestart{{Time: ro, Version: "v", User: "a"}}, 0},
		{"before rollout", []rollout.WatchdogRestart{{Time: ro.Add(-time.Hour), Version: "v", User: "a", RolledOut: ro}}, 0},
	}
	for _, tt := range tests {
		require.Len(t, rollout.SuspectBuilds(tt.rs, 0), tt.want, tt.name)
	}
}

func TestWatchdogTornCountersStartOver(t *testing.T) {
	f := newWD(t)
	require.NoError(t, os.MkdirAll(f.wd.Dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(f.wd.Dir, "bob.json"), []byte("{\"failu"), 0o644))
	c, err := f.wd.Counters("bob")
	require.NoError(t, err)
	require.Equal(t, rollout.UnitCounters{}, c)
	f.tick(t)
}

// The version in a restart record is what a user's instance answered: a
// newline or a blank in it must not forge records for other users (status
// prints them as SUSPECT builds). Such a version is recorded as unknown.
func TestWatchdogRestartRecordsNoForgedLine(t *testing.T) {
	st := rollout.State{Dir: t.TempDir()}
	at := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	forged := "0.0.31\n" + at.Format(time.RFC3339) + " 0.0.32 carol " + at.Format(time.RFC3339)
	for _, v := range []string{forged, "0.0.31 0.0.32", "0.0.31\t", "\x1b[2J0.0.31"} {
		require.NoError(t, st.RecordWatchdogRestart(rollout.WatchdogRestart{Time: at, Version: v, User: "bob", RolledOut: at}))
	}
	require.NoError(t, st.RecordWatchdogRestart(rollout.WatchdogRestart{Time: at, Version: "0.0.31-nightly.20261101.1", User: "bob"}))
	rs, err := st.WatchdogRestarts()
	require.NoError(t, err)
	require.Len(t, rs, 5, "one record per restart")
	for _, r := range rs[:4] {
		assert.Equal(t, "bob", r.User)
		assert.Empty(t, r.Version, "an answer that is no version is recorded as unknown")
	}
	assert.Equal(t, "0.0.31-nightly.20261101.1", rs[4].Version)
}
