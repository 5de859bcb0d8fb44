package t3test_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// clock is a settable time source for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newServer(t *testing.T, dir string, opts t3test.Options) *t3test.Server {
	t.Helper()
	srv := t3test.NewServer(dir, opts)
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	Status  int
	Header  http.Header
	Cookies []*http.Cookie
	Body    map[string]any
	Raw     string
}

func do(t *testing.T, method, url, body string, cookies ...*http.Cookie) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := response{Status: resp.StatusCode, Header: resp.Header, Cookies: resp.Cookies(), Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

func exchangeBody(cred string) string { return `{"credential":"` + cred + `"}` }

// pair mints and exchanges on the era's route and returns the session cookie.
func pair(t *testing.T, srv *t3test.Server) *http.Cookie {
	t.Helper()
	cred, err := srv.Mint(0)
	require.NoError(t, err)
	r := do(t, "POST", srv.URL+srv.Era.PairingPath(), exchangeBody(cred))
	require.Equal(t, 200, r.Status, r.Raw)
	require.Len(t, r.Cookies, 1)
	return r.Cookies[0]
}

func TestServerPairsPerEra(t *testing.T) {
	for _, era := range t3test.Eras() {
		t.Run(string(era), func(t *testing.T) {
			srv := newServer(t, t.TempDir(), t3test.Options{Era: era, User: "emil"})

			env := do(t, "GET", srv.URL+"/.well-known/t3/environment", "")
			require.Equal(t, 200, env.Status)
			assert.Equal(t, t3test.DefaultVersion(era), env.Body["serverVersion"])
			assert.Equal(t, srv.EnvironmentID, env.Body["environmentId"])
			platform := env.Body["platform"].(map[string]any)
			assert.Contains(t, []any{"linux", "darwin", "windows", "unknown"}, platform["os"], "t3's words for the OS")
			assert.Contains(t, []any{"x64", "arm64", "other"}, platform["arch"], "t3's words for the CPU, not Go's")

			anon := do(t, "GET", srv.URL+"/api/auth/session", "")
			require.Equal(t, 200, anon.Status)
			assert.Equal(t, false, anon.Body["authenticated"])
			assert.Equal(t, srv.CookieName(), anon.Body["auth"].(map[string]any)["sessionCookieName"])

			other := t3test.PathBrowserSession
			if era != t3test.EraA {
				other = t3test.PathBootstrap
			}
			cred, err := srv.Mint(0)
			require.NoError(t, err)
			assert.Regexp(t, `^[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{12}$`, cred)
			assert.Equal(t, 404, do(t, "POST", srv.URL+other, exchangeBody(cred)).Status, "route this build lacks")

			r := do(t, "POST", srv.URL+era.PairingPath(), exchangeBody(cred))
			require.Equal(t, 200, r.Status, r.Raw)
			assert.Equal(t, true, r.Body["authenticated"])
			assert.Equal(t, "browser-session-cookie", r.Body["sessionMethod"])
			if era == t3test.EraA {
				assert.Empty(t, r.Header.Get("Cache-Control"))
			} else {
				assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))
			}
			if era.UsesScopes() {
				assert.NotEmpty(t, r.Body["scopes"])
				assert.Nil(t, r.Body["role"])
			} else {
				assert.Equal(t, "client", r.Body["role"])
				assert.Nil(t, r.Body["scopes"])
			}
			sc := r.Header.Get("Set-Cookie")
			require.NotEmpty(t, sc)
			assert.Regexp(t, `^`+regexp.QuoteMeta(srv.CookieName())+`=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+; Path=/; Expires=[^;]+; HttpOnly; SameSite=Lax$`, sc)
			assert.NotContains(t, sc, "Max-Age")
			cookie := r.Cookies[0]
			assert.WithinDuration(t, time.Now().Add(30*24*time.Hour), cookie.Expires, time.Minute)

			live := do(t, "GET", srv.URL+"/api/auth/session", "", cookie)
			assert.Equal(t, true, live.Body["authenticated"])
			if era.UsesScopes() {
				assert.NotEmpty(t, live.Body["scopes"])
			} else {
				assert.Equal(t, "client", live.Body["role"])
			}

			again := do(t, "POST", srv.URL+era.PairingPath(), exchangeBody(cred))
			assert.Equal(t, 401, again.Status, "a credential is one-time")
			if era == t3test.EraA {
				assert.Equal(t, "Invalid bootstrap credential.", again.Body["error"])
			} else {
				assert.Equal(t, "EnvironmentAuthInvalidError", again.Body["_tag"])
				assert.Equal(t, "auth_invalid", again.Body["code"])
				assert.Equal(t, "invalid_credential", again.Body["reason"])
				assert.NotEmpty(t, again.Body["traceId"])
			}

			bad := do(t, "POST", srv.URL+era.PairingPath(), `{}`)
			if era == t3test.EraA {
				assert.Equal(t, 400, bad.Status)
				assert.Equal(t, "Invalid bootstrap payload.", bad.Body["error"])
			} else {
				assert.Equal(t, 401, bad.Status)
				assert.Equal(t, "missing_credential", bad.Body["reason"])
			}

			page := do(t, "GET", srv.URL+"/some/spa/route?x=1", "")
			assert.Equal(t, 200, page.Status)
			assert.Contains(t, page.Header.Get("Content-Type"), "text/html")
			assert.Contains(t, page.Raw, `id="session"`)
			assert.Contains(t, page.Raw, "emil")
			assert.Equal(t, 3, srv.Exchanges(), "the 404 on the missing route is not an exchange")
			assert.Equal(t, 2, srv.SessionChecks())
		})
	}
}

func TestServerCountsExchanges(t *testing.T) {
	srv := newServer(t, t.TempDir(), t3test.Options{Era: t3test.EraC})
	pair(t, srv)
	do(t, "POST", srv.URL+t3test.PathBrowserSession, `{"credential":"AAAAAAAAAAAA"}`)
	assert.Equal(t, 2, srv.Exchanges())
}

func TestSessionVerdicts(t *testing.T) {
	clk := &clock{t: time.Now()}
	srv := newServer(t, t.TempDir(), t3test.Options{Era: t3test.EraD, Now: clk.Now})
	cookie := pair(t, srv)
	authed := func(c *http.Cookie) bool {
		return do(t, "GET", srv.URL+"/api/auth/session", "", c).Body["authenticated"] == true
	}
	require.True(t, authed(cookie))

	tampered := *cookie
	tampered.Value = strings.Replace(cookie.Value, ".", "x.", 1)
	assert.False(t, authed(&tampered), "badly signed")
	assert.False(t, authed(&http.Cookie{Name: cookie.Name, Value: "garbage"}), "unparseable")
	assert.False(t, authed(&http.Cookie{Name: "t3_session_other", Value: cookie.Value}), "another instance's name")

	// An expired credential is refused.
	cred, err := srv.Mint(time.Minute)
	require.NoError(t, err)
	clk.Add(2 * time.Minute)
	assert.Equal(t, 401, do(t, "POST", srv.URL+t3test.PathBrowserSession, exchangeBody(cred)).Status)

	// Sessions last 30 days, no sliding.
	clk.Add(29 * 24 * time.Hour)
	assert.True(t, authed(cookie))
	clk.Add(24 * time.Hour)
	assert.False(t, authed(cookie), "expired")
}

func TestWipeSessionsKillsCookies(t *testing.T) {
	srv := newServer(t, t.TempDir(), t3test.Options{Era: t3test.EraB})
	cookie := pair(t, srv)
	require.NoError(t, srv.WipeSessions())
	assert.Equal(t, false, do(t, "GET", srv.URL+"/api/auth/session", "", cookie).Body["authenticated"])
}

func TestCookieNameRules(t *testing.T) {
	for _, tc := range []struct {
		era     t3test.Era
		remote  bool
		desktop bool
		want    string // regexp; PORT is replaced
	}{
		{t3test.EraA, true, false, `^t3_session$`},
		{t3test.EraB, true, false, `^t3_session$`},
		{t3test.EraC, true, false, `^t3_session$`},
		{t3test.EraD, true, false, `^t3_session_[0-9a-f]{12}$`},
		{t3test.EraE, true, false, `^t3_session_[0-9a-f]{12}$`},
		{t3test.EraA, false, false, `^t3_session_PORT_[0-9a-f]{12}$`},
		{t3test.EraC, false, false, `^t3_session_PORT_[0-9a-f]{12}$`},
		{t3test.EraD, false, false, `^t3_session_PORT_[0-9a-f]{12}$`},
		{t3test.EraB, false, true, `^t3_session_PORT$`},
	} {
		srv := newServer(t, t.TempDir(), t3test.Options{Era: tc.era, RemoteReachable: tc.remote, Mode: map[bool]string{true: "desktop"}[tc.desktop]})
		port := srv.Addr[strings.LastIndex(srv.Addr, ":")+1:]
		assert.Regexp(t, strings.Replace(tc.want, "PORT", port, 1), srv.CookieName(), "era %s remote=%v desktop=%v", tc.era, tc.remote, tc.desktop)
		assert.Equal(t, srv.CookieName(), pair(t, srv).Name)
	}
	assert.True(t, t3test.RemoteReachable("0.0.0.0"))
	assert.True(t, t3test.RemoteReachable("::"))
	assert.True(t, t3test.RemoteReachable("10.1.2.3"))
	assert.False(t, t3test.RemoteReachable("127.0.0.1"))
	assert.False(t, t3test.RemoteReachable("127.9.9.9"))
	assert.False(t, t3test.RemoteReachable("::1"))
	assert.False(t, t3test.RemoteReachable("localhost"))
}

func TestPerEnvironmentBuildUpgradesLegacyCookie(t *testing.T) {
	for _, era := range []t3test.Era{t3test.EraC, t3test.EraD} {
		srv := newServer(t, t.TempDir(), t3test.Options{Era: era, RemoteReachable: true})
		// Issue a session, then present its token under the legacy name.
		c := pair(t, srv)
		legacy := &http.Cookie{Name: "t3_session", Value: c.Value}
		r := do(t, "GET", srv.URL+"/api/auth/session", "", legacy)
		if era == t3test.EraD {
			assert.Equal(t, true, r.Body["authenticated"])
			require.Len(t, r.Cookies, 1)
			assert.Equal(t, srv.CookieName(), r.Cookies[0].Name)
			assert.Equal(t, c.Value, r.Cookies[0].Value)
		} else { // era C's name is t3_session itself: no upgrade
			assert.Equal(t, true, r.Body["authenticated"])
			assert.Empty(t, r.Cookies)
		}
	}
}

// TestSessionCheckSelectsOneCredential follows t3's selectRequestCredential:
// a cookie of the build's own name is the credential, alone, even a dead
// one (the first of that name when the browser sends several); the legacy
// t3_session counts only when no cookie has the build's name.
func TestSessionCheckSelectsOneCredential(t *testing.T) {
	srv := newServer(t, t.TempDir(), t3test.Options{Era: t3test.EraD, RemoteReachable: true})
	live := pair(t, srv).Value
	named := func(v string) *http.Cookie { return &http.Cookie{Name: srv.CookieName(), Value: v} }
	legacy := func(v string) *http.Cookie { return &http.Cookie{Name: t3test.LegacyCookieName, Value: v} }
	const dead = "not-a-session"
	tests := []struct {
		name     string
		cookies  []*http.Cookie
		want     bool
		upgraded bool // the answer sets the build's cookie from the legacy one
	}{
		{"own name, live", []*http.Cookie{named(live)}, true, false},
		{"legacy only, live", []*http.Cookie{legacy(live)}, true, true},
		{"own name dead beside a live legacy", []*http.Cookie{named(dead), legacy(live)}, false, false},
		{"own name live beside a dead legacy", []*http.Cookie{legacy(dead), named(live)}, true, false},
		{"first of two own-name cookies dead", []*http.Cookie{named(dead), named(live)}, false, false},
		{"first of two own-name cookies live", []*http.Cookie{named(live), named(dead)}, true, false},
		{"first of two legacy cookies dead", []*http.Cookie{legacy(dead), legacy(live)}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "GET", srv.URL+"/api/auth/session", "", tc.cookies...)
			require.Equal(t, 200, r.Status)
			assert.Equal(t, tc.want, r.Body["authenticated"])
			if tc.upgraded {
				require.Len(t, r.Cookies, 1)
				assert.Equal(t, srv.CookieName(), r.Cookies[0].Name)
			} else {
				assert.Empty(t, r.Cookies)
			}
		})
	}
}

func TestWebSocket(t *testing.T) {
	srv := newServer(t, t.TempDir(), t3test.Options{Era: t3test.EraE})
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, resp, err := websocket.Dial(ctx, wsURL, nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, 401, resp.StatusCode)

	cookie := pair(t, srv)
	c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {cookie.String()}}})
	require.NoError(t, err)
	defer c.CloseNow()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("ping")))
	_, msg, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(msg))
	assert.Equal(t, 1, srv.WebSockets())
	srv.Close() // must not hang on the open WebSocket
}

func TestFaults(t *testing.T) {
	t.Run("NoSetCookie", func(t *testing.T) {
		srv := newServer(t, t.TempDir(), t3test.Options{Era: t3test.EraC, Faults: t3test.Faults{NoSetCookie: true}})
		cred, err := srv.Mint(0)
		require.NoError(t, err)
		r := do(t, "POST", srv.URL+t3test.PathBrowserSession, exchangeBody(cred))
		assert.Equal(t, 200, r.Status)
		assert.Empty(t, r.Header.Values("Set-Cookie"))
	})
	t.Run("PairingBroken", func(t *testing.T) {
		for _, era := range []t3test.Era{t3test.EraA, t3test.EraD} {
			srv := newServer(t, t.TempDir(), t3test.Options{Era: era, Faults: t3test.Faults{PairingBroken: true}})
			assert.Equal(t, 200, do(t, "GET", srv.URL+"/", "").Status)
			cred, err := srv.Mint(0)
			require.NoError(t, err)
			r := do(t, "POST", srv.URL+era.PairingPath(), exchangeBody(cred))
			assert.Equal(t, 500, r.Status)
			if era != t3test.EraA {
				assert.Equal(t, "browser_session_issuance_failed", r.Body["reason"])
			}
			srv.SetFaults(t3test.Faults{})
			assert.Equal(t, 200, do(t, "POST", srv.URL+era.PairingPath(), exchangeBody(cred)).Status, "the credential was not consumed")
		}
	})
	t.Run("Wedged", func(t *testing.T) {
		srv := newServer(t, t.TempDir(), t3test.Options{Faults: t3test.Faults{Wedged: true}})
		client := &http.Client{Timeout: 300 * time.Millisecond}
		_, err := client.Get(srv.URL + "/.well-known/t3/environment")
		require.Error(t, err)
		var ue interface{ Timeout() bool }
		assert.True(t, errors.As(err, &ue) && ue.Timeout(), "got %v", err)
		srv.SetFaults(t3test.Faults{})
		assert.Equal(t, 200, do(t, "GET", srv.URL+"/", "").Status)
	})
	t.Run("SlowStart", func(t *testing.T) {
		srv := newServer(t, t.TempDir(), t3test.Options{Faults: t3test.Faults{SlowStart: 2 * time.Second}})
		_, err := http.Get(srv.URL + "/")
		require.Error(t, err, "refused before the listener is up")
		select {
		case <-srv.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("never became ready")
		}
		assert.Equal(t, 200, do(t, "GET", srv.URL+"/", "").Status)
	})
	// t3 binds its port before it runs migrations and attaches its request
	// handler, and never answers a request that came in before (t3code
	// #12215): a connection accepted in that window stays silent for good.
	t.Run("DeafStart", func(t *testing.T) {
		srv := newServer(t, t.TempDir(), t3test.Options{Faults: t3test.Faults{DeafStart: 600 * time.Millisecond}})
		early, err := net.Dial("tcp", srv.Addr)
		require.NoError(t, err, "the port accepts at once")
		defer early.Close()
		_, err = io.WriteString(early, "GET /.well-known/t3/environment HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		select {
		case <-srv.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("never attached")
		}
		assert.Equal(t, 200, do(t, "GET", srv.URL+t3test.PathEnvironment, "").Status, "a connection made after the attach is served")
		require.NoError(t, early.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
		n, err := early.Read(make([]byte, 1))
		var ne net.Error
		assert.True(t, errors.As(err, &ne) && ne.Timeout(), "the early connection is never answered, even after the attach: %d, %v", n, err)
	})
	// A build whose migration fails closes its port as it exits (that it
	// bound it first is TestStartBindsBeforeItMigrates).
	t.Run("DeafStart then a failed migration", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, t3test.SeedState(dir, t3test.EraB, t3test.SeedOptions{}))
		ports, err := t3test.FreePorts(1)
		require.NoError(t, err)
		_, err = t3test.Start(context.Background(), dir, t3test.Options{Era: t3test.EraC, Port: ports[0],
			Faults: t3test.Faults{MigrationFails: true, DeafStart: 300 * time.Millisecond}})
		var me *t3test.MigrationError
		require.ErrorAs(t, err, &me)
		_, err = net.Dial("tcp", net.JoinHostPort(t3test.DefaultHost, strconv.Itoa(ports[0])))
		require.Error(t, err, "closed on the way out")
	})
	t.Run("MigrationFails", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, t3test.SeedState(dir, t3test.EraB, t3test.SeedOptions{}))
		_, err := t3test.Start(context.Background(), dir, t3test.Options{Era: t3test.EraC, Faults: t3test.Faults{MigrationFails: true}})
		var me *t3test.MigrationError
		require.ErrorAs(t, err, &me)
		log, rerr := os.ReadFile(t3test.LogPath(dir))
		require.NoError(t, rerr)
		assert.Contains(t, string(log), `Migration \"31_AuthAuthorizationScopes\" failed`)
		lvl, rerr := t3test.ReadLedgerMax(t3test.StateDB(dir))
		require.NoError(t, rerr)
		assert.Equal(t, 30, lvl, "rolled back")
		assert.Panics(t, func() {
			t3test.NewServer(dir, t3test.Options{Era: t3test.EraC, Faults: t3test.Faults{MigrationFails: true}})
		})
	})
	// Nothing of its era pending: the bad build is one that carries a new
	// migration of its own (past the ledger), and that is what throws. It
	// never reruns one the ledger already has (t3 runs only ids above it).
	t.Run("MigrationFails with nothing of its era pending", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, t3test.SeedState(dir, t3test.EraC, t3test.SeedOptions{}))
		_, err := t3test.Start(context.Background(), dir, t3test.Options{Era: t3test.EraC, Faults: t3test.Faults{MigrationFails: true}})
		var me *t3test.MigrationError
		require.ErrorAs(t, err, &me)
		assert.Equal(t, 33, me.ID, "a migration past the ledger's 32")
		log, rerr := os.ReadFile(t3test.LogPath(dir))
		require.NoError(t, rerr)
		assert.NotContains(t, string(log), "Running migration 32_", "32 is in the ledger already")
		assert.Contains(t, string(log), "Running migration 33_")
		lvl, rerr := t3test.ReadLedgerMax(t3test.StateDB(dir))
		require.NoError(t, rerr)
		assert.Equal(t, 32, lvl, "nothing applied")
	})
}

func TestParseFaults(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want t3test.Faults
		err  bool
	}{
		{"", t3test.Faults{}, false},
		{"nosetcookie", t3test.Faults{NoSetCookie: true}, false},
		{"migration, pairingbroken", t3test.Faults{MigrationFails: true, PairingBroken: true}, false},
		{"wedged,slowstart=2s", t3test.Faults{Wedged: true, SlowStart: 2 * time.Second}, false},
		{"slowstart", t3test.Faults{SlowStart: 2 * time.Second}, false},
		{"deafstart", t3test.Faults{DeafStart: time.Second}, false},
		{"deafstart=250ms,nosetcookie", t3test.Faults{DeafStart: 250 * time.Millisecond, NoSetCookie: true}, false},
		{"deafstart=-1s", t3test.Faults{}, true},
		{"slowstart=soon", t3test.Faults{}, true},
		{"bogus", t3test.Faults{}, true},
	} {
		got, err := t3test.ParseFaults(tc.in)
		if tc.err {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
		back, err := t3test.ParseFaults(got.String())
		require.NoError(t, err)
		assert.Equal(t, got, back)
	}
}
