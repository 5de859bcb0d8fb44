package pairing_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/pairing"
	"github.com/t3fleet/t3fleet/sessionprobe"
)

// t3Minter mints through a t3test server's own database, as its CLI would.
type t3Minter struct {
	mu    sync.Mutex
	srv   *t3test.Server
	calls int
}

func (m *t3Minter) set(srv *t3test.Server) { m.mu.Lock(); m.srv = srv; m.mu.Unlock() }

func (m *t3Minter) Mint(context.Context, t3fleet.Instance) (pairing.Credential, error) {
	m.mu.Lock()
	srv := m.srv
	m.calls++
	m.mu.Unlock()
	c, err := srv.Mint(0)
	return pairing.Credential{Secret: c}, err
}

// t3Dispatch is a handler in front of one t3test server, user "emil.barzin".
type t3Dispatch struct {
	*dispatch
	minter *t3Minter
	route  *swapRouter
}

// swapRouter routes one user to an instance that can be replaced (a restart
// on a new build).
type swapRouter struct {
	mu sync.Mutex
	in t3fleet.Instance
}

func (r *swapRouter) Route(u string) (t3fleet.Instance, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.in, u == r.in.User
}

func (r *swapRouter) set(srv *t3test.Server) {
	r.mu.Lock()
	r.in = t3fleet.Instance{User: "emil.barzin", OSUser: "emil", BaseURL: srv.URL, StateDir: srv.BaseDir}
	r.mu.Unlock()
}

func newT3Dispatch(t *testing.T, srv *t3test.Server) *t3Dispatch {
	t.Helper()
	td := &t3Dispatch{minter: &t3Minter{srv: srv}, route: &swapRouter{}}
	td.route.set(srv)
	d := &dispatch{t: t, logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	d.pairer = pairing.NewPairer(td.minter, pairing.PairerOptions{})
	h := pairing.NewHandler(td.route, d.pairer, pairing.HandlerOptions{
		Logger:     slog.New(slog.NewTextHandler(d.logs, nil)),
		Registerer: d.reg,
		Prober:     sessionprobe.NewHTTPProber(sessionprobe.Options{CacheTTL: -1}),
	})
	d.url = startFront(t, h, pairing.FrontOptions{})
	td.dispatch = d
	return td
}

// TestAgainstEveryEra pairs into a fake t3 of each era and bind mode: the
// exchange name, the cookie name and the session check all come from the
// build, none from the proxy.
func TestAgainstEveryEra(t *testing.T) {
	for _, era := range t3test.Eras() {
		for _, remote := range []bool{false, true} {
			t.Run(fmt.Sprintf("era %s remote=%t", era, remote), func(t *testing.T) {
				srv := t3test.NewServer(t.TempDir(), t3test.Options{Era: era, User: "emil.barzin", RemoteReachable: remote})
				t.Cleanup(srv.Close)
				d := newT3Dispatch(t, srv)

				resp, _ := d.get("emil.barzin", "/?chat=1", pageLoad, nil)
				require.Equal(t, http.StatusFound, resp.StatusCode)
				assert.Equal(t, "/?chat=1", resp.Header.Get("Location"))
				cookies := sessionCookies(resp)
				require.Len(t, cookies, 1)
				assert.Equal(t, srv.CookieName(), cookies[0].Name)
				assert.Contains(t, d.logs.String(), fmt.Sprintf("paired user=emil.barzin endpoint=%s fallback=%t", era.PairingPath(), era.PairingPath() == bt))

				checks := srv.SessionChecks()
				resp, body := d.get("emil.barzin", "/?chat=1", pageLoad, cookies)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Contains(t, body, "emil.barzin")
				assert.Equal(t, checks+1, srv.SessionChecks(), "the page load was probed")

				resp, body = d.get("emil.barzin", "/api/auth/session", fetchXHR, cookies)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Contains(t, body, `"authenticated":true`)

				// A wiped session: XHR passes through, the page load re-pairs.
				require.NoError(t, srv.WipeSessions())
				resp, body = d.get("emil.barzin", "/api/auth/session", fetchXHR, cookies)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Contains(t, body, `"authenticated":false`)
				resp, _ = d.get("emil.barzin", "/", pageLoad, cookies)
				require.Equal(t, http.StatusFound, resp.StatusCode)
				fresh := sessionCookies(resp)
				require.Len(t, fresh, 1)
				resp, _ = d.get("emil.barzin", "/", pageLoad, fresh)
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, 2, srv.Exchanges())
			})
		}
	}
}

// TestAcrossTheUpgrade: a user paired on an era-A build (bootstrap, legacy
// name), then the instance restarts on later builds on the same base dir
// and port: each time the first page load re-pairs, at the new exchange
// name and under the new cookie name, and the proxy learns both.
func TestAcrossTheUpgrade(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	srv := t3test.NewServer(dir, t3test.Options{Era: t3test.EraA, Port: port, User: "emil.barzin", RemoteReachable: true})
	d := newT3Dispatch(t, srv)
	resp, _ := d.get("emil.barzin", "/", pageLoad, nil)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	jar := sessionCookies(resp)
	require.Equal(t, "t3_session", jar[0].Name)
	assert.Equal(t, bt, d.pairer.Endpoint(srv.URL))

	steps := []struct {
		era    t3test.Era
		repair bool // sessions wiped by the new build's migrations
	}{
		{t3test.EraB, false}, // the exchange rename; sessions survive
		{t3test.EraC, true},  // migration 31 deletes every session
		{t3test.EraD, false}, // new cookie name; the legacy one is still accepted
		{t3test.EraE, false}, // statev2: a copy of the same sessions
	}
	for _, st := range steps {
		srv.Close()
		srv = t3test.NewServer(dir, t3test.Options{Era: st.era, Port: port, User: "emil.barzin", RemoteReachable: true})
		d.minter.set(srv)
		d.route.set(srv)

		resp, body := d.get("emil.barzin", "/", pageLoad, jar)
		if !st.repair {
			require.Equal(t, http.StatusOK, resp.StatusCode, "era %s: the session is still live", st.era)
			assert.Contains(t, body, "emil.barzin")
			continue
		}
		require.Equal(t, http.StatusFound, resp.StatusCode, "era %s: the stale session re-pairs", st.era)
		jar = mergeCookies(jar, resp.Cookies())
		assert.Equal(t, st.era.PairingPath(), d.pairer.Endpoint(srv.URL), "era %s", st.era)
		assert.Contains(t, names(jar), srv.CookieName(), "era %s", st.era)
		resp, body = d.get("emil.barzin", "/", pageLoad, jar)
		require.Equal(t, http.StatusOK, resp.StatusCode, "era %s", st.era)
		assert.Contains(t, body, "emil.barzin")
	}
	// From era D on, the build names its cookie per environment; the browser
	// still holds the legacy one, which the build accepts and renames when
	// the page's own session check passes through the proxy.
	resp, _ = d.get("emil.barzin", "/api/auth/session", fetchXHR, jar)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	jar = mergeCookies(jar, resp.Cookies())
	assert.Contains(t, names(jar), srv.CookieName(), "the new name reached the browser through the proxy")
	assert.Equal(t, 2, d.minter.calls, "paired on era A and after migration 31 only")
	t.Cleanup(srv.Close)
	assert.Contains(t, d.logs.String(), "paired user=emil.barzin endpoint=/api/auth/bootstrap fallback=true", "era A: the old name, as the seed logged it")
	assert.Contains(t, d.logs.String(), "paired user=emil.barzin endpoint=/api/auth/browser-session fallback=false", "past the rename: the new name, though the stale memory cost one 404")
}

// mergeCookies applies Set-Cookie answers to a jar of cookies, as a browser does.
func mergeCookies(jar, set []*http.Cookie) []*http.Cookie {
	byName := map[string]*http.Cookie{}
	var order []string
	for _, c := range jar {
		byName[c.Name] = c
		order = append(order, c.Name)
	}
	for _, c := range set {
		if _, ok := byName[c.Name]; !ok {
			order = append(order, c.Name)
		}
		byName[c.Name] = c
	}
	var out []*http.Cookie
	for _, n := range order {
		if c := byName[n]; c.MaxAge >= 0 && c.Value != "" {
			out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return out
}

func names(cs []*http.Cookie) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// TestT3Faults: the fake's failure switches reach the browser as the
// right status and log line, and a wedged instance does not wedge the probe.
func TestT3Faults(t *testing.T) {
	tests := []struct {
		name    string
		faults  t3test.Faults
		cookie  bool
		want    int
		wantLog string
	}{
		{"exchange 200 without Set-Cookie", t3test.Faults{NoSetCookie: true}, false, http.StatusBadGateway, "pairing for emil.barzin returned 200"},
		{"pairing broken while / is 200", t3test.Faults{PairingBroken: true}, false, http.StatusBadGateway, "pairing for emil.barzin returned 500"},
		{"pairing broken, live cookie still proxies", t3test.Faults{PairingBroken: true}, true, http.StatusOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := t3test.NewServer(t.TempDir(), t3test.Options{Era: t3test.EraD, User: "emil.barzin"})
			t.Cleanup(srv.Close)
			d := newT3Dispatch(t, srv)
			var cookies []*http.Cookie
			if tc.cookie {
				resp, _ := d.get("emil.barzin", "/", pageLoad, nil)
				require.Equal(t, http.StatusFound, resp.StatusCode)
				cookies = sessionCookies(resp)
			}
			srv.SetFaults(tc.faults)
			resp, _ := d.get("emil.barzin", "/", pageLoad, cookies)
			assert.Equal(t, tc.want, resp.StatusCode)
			if tc.wantLog != "" {
				assert.Contains(t, d.logs.String(), tc.wantLog)
			}
		})
	}
}

// TestOutageSessionCheckFailsOpen replays the 2026-06-09 outage: a newer
// CLI migrated the database under the running older server, which can no
// longer read its sessions and answers its session check with a 500. A page
// load with a live cookie is in doubt, not signed out: it is proxied, and
// nothing is minted (a mint would run a CLI against that database again).
func TestOutageSessionCheckFailsOpen(t *testing.T) {
	srv := t3test.NewServer(t.TempDir(), t3test.Options{Era: t3test.EraB, User: "emil.barzin"})
	t.Cleanup(srv.Close)
	d := newT3Dispatch(t, srv)
	resp, _ := d.get("emil.barzin", "/", pageLoad, nil)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	jar := sessionCookies(resp)
	_, err := t3test.CreatePairing(context.Background(), srv.BaseDir, t3test.EraC, t3test.PairingOptions{})
	require.NoError(t, err)

	resp, body := d.get("emil.barzin", "/", pageLoad, jar)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "emil.barzin", "the instance's own page")
	assert.Equal(t, 1, d.minter.calls, "paired once, before the outage")
	assert.Equal(t, 1.0, d.metricValue(pairing.MetricProbeVerdicts, map[string]string{"verdict": "unknown"}))
}

// TestPairsThroughTheStartWindow: t3 binds its port before it answers and
// never answers a request accepted meanwhile (t3code #12215). A first visit
// in that window, as right after the nightly restart, pairs once the
// instance answers: the exchange does not go out on a connection that will
// never be answered, to wait out its timeout and fail.
func TestPairsThroughTheStartWindow(t *testing.T) {
	srv := t3test.NewServer(t.TempDir(), t3test.Options{Era: t3test.EraE, User: "emil.barzin",
		Faults: t3test.Faults{DeafStart: 800 * time.Millisecond}})
	t.Cleanup(srv.Close)
	d := newT3Dispatch(t, srv)
	t0 := time.Now()
	resp, _ := d.get("emil.barzin", "/", pageLoad, nil)
	took := time.Since(t0)
	require.Equal(t, http.StatusFound, resp.StatusCode, d.logs.String())
	require.Len(t, sessionCookies(resp), 1)
	assert.Less(t, took, 5*time.Second, "paired soon after the instance answered, not after the exchange timed out (%s)", pairing.DefaultExchangeTimeout)
	assert.Equal(t, 1, srv.Exchanges())
}

// TestWebSocketThroughTheStartWindow: an open tab reconnects its WebSocket
// as soon as the instance is back after a restart, in the window where t3
// accepts connections it never answers (t3code #12215). The upgrade waits
// for the instance to answer, then goes through, instead of hanging on a
// connection that will never switch protocols.
func TestWebSocketThroughTheStartWindow(t *testing.T) {
	dir := t.TempDir()
	ports, err := t3test.FreePorts(1)
	require.NoError(t, err)
	srv := t3test.NewServer(dir, t3test.Options{Era: t3test.EraE, Port: ports[0], User: "emil.barzin"})
	d := newT3Dispatch(t, srv)
	resp, _ := d.get("emil.barzin", "/", pageLoad, nil)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	cookies := sessionCookies(resp)
	require.Len(t, cookies, 1)

	srv.Close() // the restart: same state, same port, silent for its first moment
	srv = t3test.NewServer(dir, t3test.Options{Era: t3test.EraE, Port: ports[0], User: "emil.barzin",
		Faults: t3test.Faults{DeafStart: 800 * time.Millisecond}})
	t.Cleanup(srv.Close)
	d.minter.set(srv)
	d.route.set(srv)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hdr := http.Header{pairing.DefaultUserHeader: {"emil.barzin"}, "Cookie": {cookies[0].String()}}
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(d.url, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
	require.NoError(t, err, "the upgrade went through once the instance answered")
	defer c.CloseNow()
	assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("hello")))
	_, msg, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Contains(t, string(msg), "hello")
}

// BenchmarkPairT3 measures the pair path against the fake t3 (a real
// SQLite-backed mint and exchange).
func BenchmarkPairT3(b *testing.B) {
	srv := t3test.NewServer(b.TempDir(), t3test.Options{Era: t3test.EraE, User: "emil.barzin"})
	b.Cleanup(srv.Close)
	r := &swapRouter{}
	r.set(srv)
	h := pairing.NewHandler(r, pairing.NewPairer(&t3Minter{srv: srv}, pairing.PairerOptions{}),
		pairing.HandlerOptions{LoopGuardMax: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	front := httptest.NewServer(h)
	b.Cleanup(front.Close)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/", nil)
		req.Header.Set(pairing.DefaultUserHeader, "emil.barzin")
		req.Header.Set("Sec-Fetch-Dest", "document")
		resp, err := noRedirect.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			b.Fatal("status " + strconv.Itoa(resp.StatusCode))
		}
	}
}
