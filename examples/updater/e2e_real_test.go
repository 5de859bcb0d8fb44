package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
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
	"github.com/t3fleet/t3fleet/adapters/npm"
	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
	"github.com/t3fleet/t3fleet/adapters/supervisor"
	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/pairing"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// The fully real fleet: fake t3 builds (t3test's CLI) published to a real
// Verdaccio, installed side by side by the npm adapter, each user's `t3
// serve` run by the process supervisor from <prefix>/bin/t3, the real
// dispatch (pairing.Handler) in front, the idle gate reading the real state
// databases, statebackup snapshots. The health checker is a small one local
// to this test (throwaway serve on a copy of the seed, mint, exchange).
const (
	realOld   = "0.0.25-nightly.20260520.1"   // era B: browser-session, role
	realNew   = "0.0.31-nightly.20260616.571" // era C: migrations 31-32
	realRoute = "0.0.24"                      // era A: bootstrap only (the route moved back)
)

type realFleet struct {
	t        *testing.T
	reg      *npmtest.Registry
	cli      string
	prefix   string
	inst     *npm.SideBySide
	store    *statebackup.Store
	sup      *supervisor.Supervisor
	dispatch *httptest.Server
	home     string
	users    []string
	insts    map[string]t3fleet.Instance

	mu     sync.Mutex
	broken map[string]string // version -> the user whose serve has pairing broken on it
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newRealFleet(t *testing.T, users []string, busy string, publish map[string]t3test.Faults) *realFleet {
	t.Helper()
	ctx := context.Background()
	reg := npmtest.New(t, npmtest.Options{})
	cli := t3test.BuildCLI(t)
	for _, v := range []string{realOld, realNew} {
		require.NoError(t, reg.PublishT3(ctx, v, "nightly", npmtest.PublishOptions{CLI: cli, Faults: publish[v].String()}))
	}
	dir := t.TempDir()
	f := &realFleet{t: t, reg: reg, cli: cli, prefix: filepath.Join(dir, "prefix"), home: filepath.Join(dir, "home"),
		users: users, insts: map[string]t3fleet.Instance{}, broken: map[string]string{},
		store: statebackup.NewStore(filepath.Join(dir, "backups"), statebackup.Options{})}
	var err error
	f.inst, err = npm.NewSideBySide(f.prefix, npm.SideBySideOptions{Env: reg.Env()})
	require.NoError(t, err)
	b, err := f.inst.Stage(ctx, realOld)
	require.NoError(t, err)
	require.NoError(t, f.inst.Activate(ctx, b))

	stable := filepath.Join(f.prefix, npm.BinDir, "t3")
	var specs []supervisor.UnitSpec
	for i, u := range users {
		base := filepath.Join(f.home, u, ".t3")
		opts := t3test.SeedOptions{Threads: 2 + 4*i, Now: time.Now().Add(-time.Hour)}
		if u == busy {
			opts.ActiveTurns = 1
		}
		require.NoError(t, t3test.SeedState(base, t3test.EraFor(realOld), opts))
		port := freePort(t)
		baseURL := "http://127.0.0.1:" + strconv.Itoa(port)
		f.insts[u] = t3fleet.Instance{User: u, OSUser: u, BaseURL: baseURL, StateDir: base}
		user := u
		specs = append(specs, supervisor.UnitSpec{User: u, LogFile: filepath.Join(dir, u+".log"),
			Command: func(ctx context.Context) ([]string, error) {
				argv := []string{stable, "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--base-dir", base}
				v, err := f.inst.Current(ctx)
				if err != nil {
					return nil, err
				}
				f.mu.Lock()
				defer f.mu.Unlock()
				if f.broken[v] == user {
					argv = append([]string{"/usr/bin/env", t3test.FaultsEnv + "=pairingbroken"}, argv...)
				}
				return argv, nil
			},
			Ready: supervisor.ReadyHTTP(baseURL + "/")})
	}
	f.sup, err = supervisor.New(specs, supervisor.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { f.sup.Close() })
	for _, u := range users {
		require.NoError(t, f.sup.Start(ctx, rollout.Unit{Name: "t3-serve@" + u + ".service", User: u}))
	}

	// The dispatch mints with the current build, as the updater leaves it.
	minter, err := t3a.NewCLIMinter([]string{stable, "auth", "pairing", "create", "--base-dir", t3a.PlaceholderStateDir, "--json"}, t3a.CLIMinterOptions{})
	require.NoError(t, err)
	router := routerFunc(func(sso string) (t3fleet.Instance, bool) { in, ok := f.insts[sso]; return in, ok })
	f.dispatch = httptest.NewServer(pairing.NewHandler(router, pairing.NewPairer(minter, pairing.PairerOptions{}), pairing.HandlerOptions{LoopGuardMax: -1}))
	t.Cleanup(f.dispatch.Close)
	return f
}

type routerFunc func(string) (t3fleet.Instance, bool)

func (r routerFunc) Route(sso string) (t3fleet.Instance, bool) { return r(sso) }

// dispatchVerifier asks the dispatch for a page as the SSO user and wants a
// session cookie back, polling until ctx ends.
type dispatchVerifier struct{ url string }

func (d dispatchVerifier) VerifyPairing(ctx context.Context, user string) error {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url+"/", nil)
		if err != nil {
			return err
		}
		req.Header.Set(pairing.DefaultUserHeader, user)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Sec-Fetch-Dest", "document")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if len(resp.Cookies()) > 0 {
				return nil
			}
			last = fmt.Errorf("dispatch answered %d without a session cookie", resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("verify %s: %w (last: %v)", user, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// health: a throwaway serve of the staged build on a copy of the seed,
// bound to loopback; passes when it answers, its log shows no migration
// error, and mint -> exchange yields a session cookie.
func (f *realFleet) health(ctx context.Context, b rollout.Build, seed string) (rollout.HealthReport, error) {
	t0 := time.Now()
	dir := f.t.TempDir()
	if seed != "" {
		data, err := os.ReadFile(seed)
		if err != nil {
			return rollout.HealthReport{}, err
		}
		require.NoError(f.t, os.MkdirAll(t3test.UserDataDir(dir), 0o755))
		require.NoError(f.t, os.WriteFile(t3test.StateDB(dir), data, 0o600))
	}
	port := freePort(f.t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(dir, "serve.log")
	logf, err := os.Create(logPath)
	require.NoError(f.t, err)
	defer logf.Close()
	cmd := exec.Command(b.Bin, "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--base-dir", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(f.t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	fail := func(why string) (rollout.HealthReport, error) {
		return rollout.HealthReport{Passed: false, Reason: why, Took: time.Since(t0)}, nil
	}
	ready := supervisor.ReadyHTTP(base + "/")
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		err := ready(rctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			exited <- nil
			log, _ := os.ReadFile(logPath)
			for _, line := range strings.Split(string(log), "\n") {
				if strings.Contains(line, "failed") {
					return fail(strings.TrimSpace(line))
				}
			}
			return fail("serve exited before answering")
		case <-ctx.Done():
			return fail("serve never answered")
		case <-time.After(50 * time.Millisecond):
		}
	}
	minter, err := t3a.NewCLIMinter([]string{b.Bin, "auth", "pairing", "create", "--base-dir", t3a.PlaceholderStateDir, "--json"}, t3a.CLIMinterOptions{})
	if err != nil {
		return rollout.HealthReport{}, err
	}
	sess, err := pairing.NewPairer(minter, pairing.PairerOptions{}).Pair(ctx, t3fleet.Instance{User: "healthcheck", OSUser: "healthcheck", BaseURL: base, StateDir: dir})
	if err != nil {
		return fail("pairing: " + err.Error())
	}
	lvl, err := t3test.ReadLedgerMax(t3test.LiveDB(dir))
	if err != nil {
		return fail("ledger: " + err.Error())
	}
	return rollout.HealthReport{Passed: true, Endpoint: sess.Endpoint, Cookie: sess.Cookies[0].Name, Schema: lvl, Took: time.Since(t0)}, nil
}

func (f *realFleet) engine(o rollout.Options) *rollout.Engine {
	dir := f.t.TempDir()
	o.StateDir, o.FreezeFile, o.TmpDir, o.LockWait = filepath.Join(dir, "state"), filepath.Join(dir, "freeze"), dir, -1
	o.VerifyTimeout = 20 * time.Second
	o.Logger = npmtest.Logger(f.t)
	return &rollout.Engine{Units: f.sup, Installer: f.inst, Backups: f.store,
		Registry: npm.NewRegistry(npm.RegistryOptions{URL: f.reg.URL, Token: npmtest.Token}),
		Locator:  rollout.HomeLocator{Root: f.home},
		Idle:     idlegate.NewDBOracle(idlegate.DBOptions{}),
		Health:   &healthFunc{f.health},
		Verifier: dispatchVerifier{url: f.dispatch.URL},
		Options:  o}
}

type healthFunc struct {
	f func(context.Context, rollout.Build, string) (rollout.HealthReport, error)
}

func (h *healthFunc) Check(ctx context.Context, b rollout.Build, seed string) (rollout.HealthReport, error) {
	return h.f(ctx, b, seed)
}

func (f *realFleet) ledger(u string) int {
	lvl, err := t3test.ReadLedgerMax(t3test.LiveDB(f.insts[u].StateDir))
	require.NoError(f.t, err)
	return lvl
}

func TestRealFleetGoodNightlyDefersBusyUser(t *testing.T) {
	users := []string{"ana", "ben", "cat", "dan"}
	f := newRealFleet(t, users, "cat", nil)
	var restartVerify time.Duration
	var activated, done time.Time
	e := f.engine(rollout.Options{OnEvent: func(ev rollout.Event) {
		switch ev.Kind {
		case rollout.EventVerified:
			restartVerify += ev.Took // from the restart call to the first successful verification
		case rollout.EventActivated:
			activated = ev.Time
		case rollout.EventDone:
			done = ev.Time
		}
	}})
	t0 := time.Now()
	res, err := e.Run(context.Background())
	took := time.Since(t0)
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeDone, res.Outcome, res.Line())
	require.Equal(t, []string{"cat"}, res.Deferred)
	require.ElementsMatch(t, []string{"ana", "ben", "dan"}, res.Restarted)
	for _, u := range res.Restarted {
		require.Equal(t, 32, f.ledger(u), u)
	}
	require.Equal(t, 30, f.ledger("cat"), "the busy user's database is untouched")
	canary := done.Sub(activated)
	t.Logf("PERF users=%d bump=%s canary(activate->done)=%s restart+verify sum=%s ratio(bump)=%.2f ratio(canary)=%.2f",
		len(users), took.Round(time.Millisecond), canary.Round(time.Millisecond), restartVerify.Round(time.Millisecond),
		float64(took)/float64(restartVerify), float64(canary)/float64(restartVerify))
}

func TestRealFleetMigrationFailureCaughtByHealthCheck(t *testing.T) {
	f := newRealFleet(t, []string{"ana", "ben"}, "", map[string]t3test.Faults{realNew: {MigrationFails: true}})
	e := f.engine(rollout.Options{})
	before := map[string]int{}
	for _, u := range f.users {
		st, err := f.sup.Status(context.Background(), rollout.Unit{Name: "t3-serve@" + u + ".service", User: u})
		require.NoError(t, err)
		before[u] = st.MainPID
	}
	res, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrHealthCheckFailed)
	require.Contains(t, res.Line(), `HEALTH-CHECK FAILED (`)
	require.Contains(t, res.Line(), `31_AuthAuthorizationScopes`)
	for _, u := range f.users {
		st, err := f.sup.Status(context.Background(), rollout.Unit{Name: "t3-serve@" + u + ".service", User: u})
		require.NoError(t, err)
		require.Equal(t, before[u], st.MainPID, "%s not restarted", u)
		require.Equal(t, 30, f.ledger(u))
	}
}

func TestRealFleetCanaryFailureRestoresAndFreezes(t *testing.T) {
	f := newRealFleet(t, []string{"ana", "ben", "cat"}, "", nil)
	f.broken[realNew] = "ben"
	e := f.engine(rollout.Options{Order: []string{"ana", "ben"}})
	res, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrRolledBack, res.Line())
	cur, err := f.inst.Current(context.Background())
	require.NoError(t, err)
	require.Equal(t, realOld, cur)
	for _, u := range []string{"ana", "ben", "cat"} {
		require.Equal(t, 30, f.ledger(u), "%s back on the old schema", u)
		require.NoError(t, dispatchVerifier{f.dispatch.URL}.VerifyPairing(context.Background(), u), "%s pairs on the old build", u)
	}
	res, err = e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeFrozen, res.Outcome)
	require.False(t, errors.Is(err, rollout.ErrRolledBack))
}
