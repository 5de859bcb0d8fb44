package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/adapters/supervisor"
	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/pairing"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
	"github.com/t3fleet/t3fleet/statebackup"
)

const wdVersion = "0.0.31-nightly.20260616.571"

// wdFleet is three fake t3 builds run by the process supervisor: alice
// healthy, bob wedged on his first start (the listener accepts and never
// answers), carol with no env file (a provisioning problem).
type wdFleet struct {
	dir, envDir string
	good, wedge string // build binaries
	ports       map[string]int
	sup         *supervisor.Supervisor
	e           *rollout.Engine

	mu     sync.Mutex
	starts map[string]int
}

func newWDFleet(t *testing.T) *wdFleet {
	t.Helper()
	cli := t3test.BuildCLI(t)
	dir := t.TempDir()
	f := &wdFleet{dir: dir, envDir: filepath.Join(dir, "etc"), ports: map[string]int{}, starts: map[string]int{}}
	var err error
	f.good, err = t3test.WriteBuild(filepath.Join(dir, "versions", "good"), cli, wdVersion, t3test.Faults{})
	require.NoError(t, err)
	f.wedge, err = t3test.WriteBuild(filepath.Join(dir, "versions", "wedged"), cli, wdVersion, t3test.Faults{Wedged: true})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(f.envDir, 0o755))
	var specs []supervisor.UnitSpec
	users := []string{"alice", "bob", "carol"}
	ports, err := t3test.FreePorts(len(users))
	require.NoError(t, err)
	for i, u := range users {
		require.NoError(t, t3test.SeedState(f.baseDir(u), t3test.EraFor(wdVersion), t3test.SeedOptions{}))
		port := ports[i]
		f.ports[u] = port
		if u != "carol" {
			// The seed's quoting, tolerated.
			require.NoError(t, os.WriteFile(filepath.Join(f.envDir, u+".env"), []byte(fmt.Sprintf("T3_PORT=\"%d\"\n", port)), 0o644))
		}
		specs = append(specs, supervisor.UnitSpec{User: u, Command: f.command(u),
			LogFile: filepath.Join(dir, u+".log"),
			Ready:   supervisor.ReadyTCP("127.0.0.1:" + strconv.Itoa(port))})
	}
	f.sup, err = supervisor.New(specs, supervisor.Options{StopTimeout: 2 * time.Second, ReadyTimeout: 20 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { f.sup.Close() })

	f.e = &rollout.Engine{Units: f.sup,
		Installer: &rollouttest.Installer{CurrentFunc: func(context.Context) (string, error) { return wdVersion, nil }},
		Health:    &rollouttest.HealthChecker{},
		Backups:   statebackup.NewStore(filepath.Join(dir, "backups"), statebackup.Options{}),
		Verifier:  &rollouttest.Verifier{VerifyPairingFunc: f.verify},
		Locator: rollout.LocatorFunc(func(_ context.Context, u rollout.Unit) (t3fleet.Instance, error) {
			return t3fleet.Instance{User: u.User, OSUser: u.User, StateDir: f.baseDir(u.User), BaseURL: f.base(u.User)}, nil
		}),
		Options: rollout.Options{StateDir: filepath.Join(dir, "state"), FreezeFile: filepath.Join(dir, "freeze"),
			LockWait: -1, VerifyTimeout: 10 * time.Second}}
	return f
}

func (f *wdFleet) baseDir(u string) string { return filepath.Join(f.dir, "home", u, ".t3") }
func (f *wdFleet) base(u string) string    { return "http://127.0.0.1:" + strconv.Itoa(f.ports[u]) }

// command runs bob's first start on the wedged build, every other start on
// the good one.
func (f *wdFleet) command(u string) func(context.Context) ([]string, error) {
	return func(context.Context) ([]string, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		bin := f.good
		if u == "bob" && f.starts[u] == 0 {
			bin = f.wedge
		}
		f.starts[u]++
		return []string{bin, "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(f.ports[u]), "--base-dir", f.baseDir(u)}, nil
	}
}

// verify mints with the build's CLI and exchanges the credential: the
// pairing a browser would get.
func (f *wdFleet) verify(ctx context.Context, user string) error {
	out, err := exec.CommandContext(ctx, f.good, "auth", "pairing", "create", "--base-dir", f.baseDir(user), "--json").Output()
	if err != nil {
		return fmt.Errorf("mint %s: %w", user, err)
	}
	cred, err := parseCredential(out)
	if err != nil {
		return err
	}
	_, err = pairing.Exchange(ctx, &http.Client{}, f.base(user), cred, "")
	return err
}

func parseCredential(out []byte) (string, error) {
	i := bytes.Index(out, []byte(`"credential"`))
	if i < 0 {
		return "", fmt.Errorf("no credential in %q", out)
	}
	rest := out[i+len(`"credential"`):]
	parts := strings.SplitN(string(rest), `"`, 3)
	if len(parts) < 3 {
		return "", fmt.Errorf("no credential in %q", out)
	}
	return parts[1], nil
}

func TestWatchdogRestartsAWedgedInstanceUnderTheSupervisor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	f := newWDFleet(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		require.NoError(t, f.sup.Start(ctx, rollout.Unit{User: u}))
	}
	var events []rollout.Event
	f.e.OnEvent = func(ev rollout.Event) { events = append(events, ev) }
	wd := &rollout.Watchdog{Engine: f.e,
		Probe: t3a.EnvironmentProbe{BaseURL: hostfiles.EnvFileBaseURL(f.envDir), Client: &http.Client{}},
		WatchdogOptions: rollout.WatchdogOptions{Dir: filepath.Join(f.dir, "run", "t3-watchdog"),
			Grace: -1, ProbeTimeout: 300 * time.Millisecond}}
	actions := func(res rollout.WatchdogResult) map[string]rollout.WatchdogAction {
		m := map[string]rollout.WatchdogAction{}
		for _, u := range res.Units {
			m[u.User] = u.Action
		}
		return m
	}
	bobPID := func() int {
		st, err := f.sup.Status(ctx, rollout.Unit{User: "bob"})
		require.NoError(t, err)
		return st.MainPID
	}
	wedgedPID := bobPID()
	for i := 0; i < 2; i++ {
		res, err := wd.Tick(ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]rollout.WatchdogAction{"alice": rollout.WatchdogOK,
			"bob": rollout.WatchdogFailing, "carol": rollout.WatchdogProvisioning}, actions(res), res.Lines())
	}
	require.Equal(t, wedgedPID, bobPID(), "no restart before the third failure")
	res, err := wd.Tick(ctx)
	require.NoError(t, err, res.Lines())
	require.Equal(t, rollout.WatchdogRestarted, actions(res)["bob"], res.Lines())
	require.NotEqual(t, wedgedPID, bobPID())

	// bob answers again and pairs; the next tick sees him healthy.
	require.NoError(t, wd.Probe.Probe(ctx, rollout.Member{Unit: rollout.Unit{User: "bob"}}))
	res, err = wd.Tick(ctx)
	require.NoError(t, err)
	require.Equal(t, rollout.WatchdogOK, actions(res)["bob"])
	c, err := wd.Counters("bob")
	require.NoError(t, err)
	require.Len(t, c.Restarts, 1)
	rs, err := f.e.State().WatchdogRestarts()
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.Equal(t, wdVersion, rs[0].Version)
	snaps, err := f.e.Backups.List(ctx, statebackup.Target{User: "bob", UserdataDir: filepath.Join(f.baseDir("bob"), "userdata")})
	require.NoError(t, err)
	require.NotEmpty(t, snaps, "backup before the restart")

	var kinds []rollout.EventKind
	for _, ev := range events {
		kinds = append(kinds, ev.Kind)
	}
	require.Contains(t, kinds, rollout.EventProvisioning)
	require.Contains(t, kinds, rollout.EventWatchdogRestart)
	require.Contains(t, kinds, rollout.EventVerified)
}

func TestMigrateIdleAndWatchdogCommands(t *testing.T) {
	f := newCLIFixture(t)
	f.env["T3_WD_STATE_DIR"] = filepath.Join(t.TempDir(), "wd")
	f.env["T3_ENV_DIR"] = t.TempDir()
	st := rollout.State{Dir: f.env["T3_STATE_DIR"]}
	require.NoError(t, st.Defer("bob", tv2))
	old := time.Now().Add(-9 * 24 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(st.Dir, rollout.DeferredDir, "bob"), old, old))

	var out, errb bytes.Buffer
	code := f.cli().migrateIdle(context.Background(), []string{"--window", "25:00-01:00"}, &out, &errb)
	require.Equal(t, 2, code, errb.String())
	require.Contains(t, errb.String(), "bad time")

	out.Reset()
	f.sim.SetBusy("bob", true)
	code = f.cli().migrateIdle(context.Background(), []string{"--window", "always"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	require.Contains(t, out.String(), "migrate-idle: migrated=0")
	require.Contains(t, out.String(), "stale=1")

	code, stdout, _ := call(f, "status")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "STALE deferral bob -> "+tv2)

	f.sim.SetBusy("bob", false)
	out.Reset()
	code = f.cli().migrateIdle(context.Background(), []string{"--window", "always"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	require.Contains(t, out.String(), "migrate-idle: migrated=1 [bob]")

	// The watchdog: no env files here, so every instance is a provisioning problem.
	out.Reset()
	code = f.cli().watchdog(context.Background(), []string{"--grace", "-1s"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	require.Contains(t, out.String(), "watchdog alice: provisioning")

	f.env["T3_WD_FAILURES"] = "zero"
	code = f.cli().watchdog(context.Background(), nil, &out, &errb)
	require.Equal(t, 2, code)
	require.Contains(t, errb.String(), "T3_WD_FAILURES")
}

// `updater status` names the units the watchdog stands down for, with the
// watchdog's own settings from the environment.
func TestStatusShowsWhatTheWatchdogHolds(t *testing.T) {
	f := newCLIFixture(t)
	dir := filepath.Join(t.TempDir(), "wd")
	f.env["T3_WD_STATE_DIR"] = dir
	require.NoError(t, os.MkdirAll(dir, 0o755))
	now := time.Now().UTC()
	c := rollout.UnitCounters{Failures: 4, Exhausted: true, LastError: "context deadline exceeded",
		Restarts: []time.Time{now.Add(-3 * time.Minute), now.Add(-2 * time.Minute), now.Add(-time.Minute)}}
	b, err := json.Marshal(c)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alice.json"), b, 0o644))

	code, stdout, stderr := call(f, "status")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "WATCHDOG-EXHAUSTED alice: 3 restarts in the last 30m0s, standing down until ")
	require.NotContains(t, stdout, "watchdog bob")

	f.env["T3_WD_MAX_RESTARTS"] = "5" // the cap the watchdog runs with: alice is not at it
	code, stdout, stderr = call(f, "status")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "watchdog alice: 4 failed probe(s) in a row (a restart at 3); last: context deadline exceeded")
}
