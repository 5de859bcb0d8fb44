package pairing_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
	"github.com/t3fleet/t3fleet/sessionprobe"
)

const (
	bs = pairing.EndpointBrowserSession
	bt = pairing.EndpointBootstrap
)

// TestPairAcrossEras: a first visit pairs whatever the build calls its
// exchange and its cookie, and the browser lands on the same URL with a
// cookie the instance accepts.
func TestPairAcrossEras(t *testing.T) {
	tests := []struct {
		era, exchange, cookie string
		wantFallback          bool
	}{
		{"A: bootstrap only, loopback cookie", bt, "t3_session_3801_0123456789ab", true},
		{"A: bootstrap only, legacy cookie", bt, "t3_session", true},
		{"B: browser-session, legacy cookie", bs, "t3_session", false},
		{"C: browser-session after migration 31", bs, "t3_session_3801_0123456789ab", false},
		{"D/E: per-environment cookie", bs, "t3_session_fedcba987654", false},
		{"desktop mode cookie", bs, "t3_session_3801", false},
	}
	for _, tc := range tests {
		t.Run(tc.era, func(t *testing.T) {
			f := newFakeInstance(t, "ana", tc.exchange, tc.cookie)
			d := newDispatch(t, map[string]*fakeInstance{"ana": f}, nil)

			resp, _ := d.get("ana", "/chat/42?tab=2&x=%2F", pageLoad, nil)
			require.Equal(t, http.StatusFound, resp.StatusCode)
			assert.Equal(t, "/chat/42?tab=2&x=%2F", resp.Header.Get("Location"))
			assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			cookies := sessionCookies(resp)
			require.Len(t, cookies, 1)
			assert.Equal(t, tc.cookie, cookies[0].Name, "the name the instance chose is relayed as is")
			assert.True(t, cookies[0].HttpOnly)
			assert.Empty(t, cookies[0].Domain)
			assert.Contains(t, d.logs.String(), fmt.Sprintf("paired user=ana endpoint=%s fallback=%t", tc.exchange, tc.wantFallback))

			resp, body := d.get("ana", "/chat/42?tab=2&x=%2F", pageLoad, cookies)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Contains(t, body, "instance ana path /chat/42?tab=2&x=%2F")
			resp, body = d.get("ana", "/api/data", fetchXHR, cookies)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.JSONEq(t, `{"instance":"ana","authenticated":true}`, body)
			assert.Equal(t, 1.0, d.metricValue(pairing.MetricPairs, map[string]string{
				"outcome": pairing.OutcomeOK, "endpoint": tc.exchange, "fallback": fmt.Sprint(tc.wantFallback)}))
		})
	}
}

// TestExchangeNameIsRememberedAndRelearned: an era-A instance costs one 404
// the first time only; when it is upgraded past the rename, the stale
// memory costs one 404 and is replaced.
func TestExchangeNameIsRememberedAndRelearned(t *testing.T) {
	f := newFakeInstance(t, "ana", bt, "t3_session")
	d := newDispatch(t, map[string]*fakeInstance{"ana": f}, func(o *pairing.HandlerOptions) { o.LoopGuardMax = -1 })
	for range 3 {
		resp, _ := d.get("ana", "/", pageLoad, nil)
		require.Equal(t, http.StatusFound, resp.StatusCode)
	}
	assert.Equal(t, 1, f.hitCount(bs), "browser-session tried once, then remembered as absent")
	assert.Equal(t, 3, f.hitCount(bt))
	assert.Equal(t, bt, d.pairer.Endpoint(f.srv.URL))

	f.set(func(f *fakeInstance) { f.exchangePath = bs }) // the rename lands
	for range 2 {
		resp, _ := d.get("ana", "/", pageLoad, nil)
		require.Equal(t, http.StatusFound, resp.StatusCode)
	}
	assert.Equal(t, 3, f.hitCount(bs))
	assert.Equal(t, 4, f.hitCount(bt), "one 404 at the old name, then the new one is remembered")
	assert.Equal(t, bs, d.pairer.Endpoint(f.srv.URL))
	// The log line keeps the seed's meaning, whatever the memory saved:
	// fallback=true for every pairing the old name gave, false after.
	assert.Equal(t, 3, strings.Count(d.logs.String(), "paired user=ana endpoint=/api/auth/bootstrap fallback=true"))
	assert.Equal(t, 2, strings.Count(d.logs.String(), "paired user=ana endpoint=/api/auth/browser-session fallback=false"))
	assert.Equal(t, 3.0, d.metricValue(pairing.MetricPairs, map[string]string{
		"outcome": pairing.OutcomeOK, "endpoint": bt, "fallback": "true"}))
}

// TestFailOpen: on a page load with a cookie, only a definite
// authenticated:false re-pairs; every doubt proxies.
func TestFailOpen(t *testing.T) {
	tests := []struct {
		mode       string
		wantStatus int
		verdict    sessionprobe.Verdict
	}{
		{"", http.StatusOK, sessionprobe.Valid},
		{"false", http.StatusFound, sessionprobe.Invalid},
		{"500", http.StatusOK, sessionprobe.Unknown},
		{"garbage", http.StatusOK, sessionprobe.Unknown},
		{"nofield", http.StatusOK, sessionprobe.Unknown},
		{"hang", http.StatusOK, sessionprobe.Unknown},
		{"drop", http.StatusOK, sessionprobe.Unknown},
	}
	for _, tc := range tests {
		t.Run("session="+tc.mode, func(t *testing.T) {
			f := newFakeInstance(t, "ana", bs, "t3_session")
			d := newDispatch(t, map[string]*fakeInstance{"ana": f}, func(o *pairing.HandlerOptions) {
				o.Prober = sessionprobe.NewHTTPProber(sessionprobe.Options{Timeout: 150 * time.Millisecond, CacheTTL: -1})
			})
			resp, _ := d.get("ana", "/", pageLoad, nil)
			require.Equal(t, http.StatusFound, resp.StatusCode)
			cookies := sessionCookies(resp)
			f.set(func(f *fakeInstance) { f.session = tc.mode })
			resp, body := d.get("ana", "/", pageLoad, cookies)
			assert.Equal(t, tc.wantStatus, resp.StatusCode, body)
			if tc.wantStatus == http.StatusOK {
				assert.Contains(t, body, "instance ana")
			}
			got := d.metricValue(pairing.MetricProbeVerdicts, map[string]string{"verdict": tc.verdict.String()})
			assert.Equal(t, 1.0, got)
		})
	}
}

// TestOnlyPageLoadsRedirect: with a dead cookie, or none, only a top-level
// page load may get a 302; XHR and assets are proxied untouched.
func TestOnlyPageLoadsRedirect(t *testing.T) {
	tests := []struct {
		name   string
		kind   string
		cookie bool
		want   int
	}{
		{"page load, dead cookie", pageLoad, true, http.StatusFound},
		{"page load, no cookie", pageLoad, false, http.StatusFound},
		{"curl without cookie pairs", curlLike, false, http.StatusFound},
		{"curl with dead cookie proxies (not a page load)", curlLike, true, http.StatusOK},
		{"fetch, dead cookie", fetchXHR, true, http.StatusOK},
		{"fetch, no cookie", fetchXHR, false, http.StatusOK},
		{"asset, dead cookie", asset, true, http.StatusOK},
		{"asset, no cookie", asset, false, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeInstance(t, "ana", bs, "t3_session")
			d := newDispatch(t, map[string]*fakeInstance{"ana": f}, nil)
			var cookies []*http.Cookie
			if tc.cookie {
				cookies = []*http.Cookie{{Name: "t3_session", Value: "dead"}}
			}
			resp, _ := d.get("ana", "/api/data", tc.kind, cookies)
			assert.Equal(t, tc.want, resp.StatusCode)
		})
	}
}

// TestStaleCookieAfterWipeRepairs: after the server wipes its sessions (as
// migration 31 does), the next page load re-pairs and the old cookie is
// replaced; a renamed cookie expires the stale one.
func TestStaleCookieAfterWipeRepairs(t *testing.T) {
	f := newFakeInstance(t, "ana", bs, "t3_session")
	// A Valid verdict is cached briefly (sessionprobe.DefaultCacheTTL); this
	// test reloads at once, so it probes every time.
	d := newDispatch(t, map[string]*fakeInstance{"ana": f}, func(o *pairing.HandlerOptions) {
		o.Prober = sessionprobe.NewHTTPProber(sessionprobe.Options{CacheTTL: -1})
	})
	resp, _ := d.get("ana", "/", pageLoad, nil)
	old := sessionCookies(resp)
	require.Len(t, old, 1)
	resp, _ = d.get("ana", "/", pageLoad, old)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	f.wipe()
	f.set(func(f *fakeInstance) { f.cookieName = "t3_session_0123456789ab" }) // and the name rule changed
	resp, body := d.get("ana", "/api/data", fetchXHR, old)
	require.Equal(t, http.StatusOK, resp.StatusCode, "XHR never redirects")
	assert.Contains(t, body, `"authenticated":false`)

	resp, _ = d.get("ana", "/p?q=1", pageLoad, old)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, "/p?q=1", resp.Header.Get("Location"))
	fresh := sessionCookies(resp)
	require.Len(t, fresh, 1)
	assert.Equal(t, "t3_session_0123456789ab", fresh[0].Name)
	expired := false
	for _, c := range resp.Cookies() {
		if c.Name == "t3_session" && c.MaxAge < 0 {
			expired = true
		}
	}
	assert.True(t, expired, "the stale legacy cookie is expired")

	resp, body = d.get("ana", "/p?q=1", pageLoad, fresh)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "instance ana")
}

// TestLoopGuard: an instance that rejects every fresh session gets three
// pairings a minute, then an error page, not another redirect.
func TestLoopGuard(t *testing.T) {
	f := newFakeInstance(t, "ana", bs, "t3_session")
	f.set(func(f *fakeInstance) { f.session = "false" })
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	d := newDispatch(t, map[string]*fakeInstance{"ana": f}, func(o *pairing.HandlerOptions) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	advance := func(dt time.Duration) { mu.Lock(); now = now.Add(dt); mu.Unlock() }

	var cookies []*http.Cookie
	for i := range pairing.DefaultLoopGuardMax {
		resp, _ := d.get("ana", "/", pageLoad, cookies)
		require.Equal(t, http.StatusFound, resp.StatusCode, "pairing %d", i+1)
		cookies = sessionCookies(resp)
		advance(time.Second)
	}
	resp, body := d.get("ana", "/", pageLoad, cookies)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Location"))
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	assert.Contains(t, body, "keeps rejecting")
	assert.Equal(t, 1.0, d.metricValue(pairing.MetricPairs, map[string]string{"outcome": pairing.OutcomeLoopGuard, "endpoint": "", "fallback": "false"}))

	resp, _ = d.get("ana", "/api/data", fetchXHR, cookies)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "XHR still proxies")

	advance(pairing.DefaultLoopGuardWindow)
	resp, _ = d.get("ana", "/", pageLoad, cookies)
	assert.Equal(t, http.StatusFound, resp.StatusCode, "the window passed")
}

// TestPairFailures: a mint failure is a 500, an exchange failure a 502,
// each with a plain reason and the seed's log line.
func TestPairFailures(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(f *fakeInstance, m *fakeMinter)
		want     int
		wantLog  string
		wantBody string
	}{
		{"mint fails", func(_ *fakeInstance, m *fakeMinter) { m.err = errors.New("sudo: a password is required") },
			http.StatusInternalServerError, "mint for ana failed: sudo: a password is required", "could not mint"},
		{"exchange 401", func(f *fakeInstance, m *fakeMinter) {
			m.instances["ana"] = newFakeInstance(t, "other", bs, "t3_session")
		},
			http.StatusBadGateway, "pairing for ana returned 401 (endpoint=/api/auth/browser-session)", "refused the pairing (401"},
		{"200 without Set-Cookie", func(f *fakeInstance, _ *fakeMinter) { f.noSetCookie = true },
			http.StatusBadGateway, "pairing for ana returned 200 (endpoint=/api/auth/browser-session)", "refused the pairing (200"},
		{"no exchange at all", func(f *fakeInstance, _ *fakeMinter) { f.exchangePath = "/none" },
			http.StatusBadGateway, "pairing for ana returned 404 (endpoint=/api/auth/bootstrap)", "refused the pairing (404"},
		{"instance down", func(f *fakeInstance, _ *fakeMinter) { f.srv.Close() },
			http.StatusBadGateway, "pairing for ana returned error (endpoint=/api/auth/browser-session)", "did not answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeInstance(t, "ana", bs, "t3_session")
			d := newDispatch(t, map[string]*fakeInstance{"ana": f}, nil)
			tc.setup(f, d.minter)
			resp, body := d.get("ana", "/", pageLoad, nil)
			assert.Equal(t, tc.want, resp.StatusCode)
			assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
			assert.Contains(t, body, tc.wantBody)
			assert.Empty(t, sessionCookies(resp))
			assert.Contains(t, d.logs.String(), tc.wantLog)
		})
	}
}

// TestCoalescing: 50 concurrent first visits of one user cost one mint and
// all get the same session.
func TestCoalescing(t *testing.T) {
	f := newFakeInstance(t, "ana", bs, "t3_session")
	d := newDispatch(t, map[string]*fakeInstance{"ana": f}, nil)
	gate := make(chan struct{})
	d.minter.gate = gate // the mint holds until all 50 are waiting on it

	const n = 50
	var wg sync.WaitGroup
	values := make([]string, n)
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			resp, _ := d.get("ana", fmt.Sprintf("/page/%d", i), pageLoad, nil)
			statuses[i] = resp.StatusCode
			if c := sessionCookies(resp); len(c) == 1 {
				values[i] = c[0].Value
			}
			assert.Equal(t, fmt.Sprintf("/page/%d", i), resp.Header.Get("Location"))
		})
	}
	eventually(t, func() bool { return d.metricValue(pairing.MetricPairWaiting, nil) == n }, "all 50 waiting")
	close(gate)
	wg.Wait()
	assert.EqualValues(t, 1, d.minter.calls.Load())
	for i := range n {
		assert.Equal(t, http.StatusFound, statuses[i])
		assert.Equal(t, values[0], values[i])
	}
	assert.Equal(t, 1, strings.Count(d.logs.String(), "paired user=ana"))
	assert.Equal(t, 0.0, d.metricValue(pairing.MetricPairWaiting, nil))
}

// TestRedirectStaysOnThisHost: the Location is the request's own path and
// query, never something that reads as another host.
func TestRedirectStaysOnThisHost(t *testing.T) {
	f := newFakeInstance(t, "ana", bs, "t3_session")
	d := newDispatch(t, map[string]*fakeInstance{"ana": f}, func(o *pairing.HandlerOptions) { o.LoopGuardMax = -1 })
	for path, want := range map[string]string{
		"/":                       "/",
		"//evil.example/x?y=1":    "/evil.example/x?y=1",
		"/%5C%5Cevil.example/":    "/%5C%5Cevil.example/",
		"/a%20b/c?q=%3Cscript%3E": "/a%20b/c?q=%3Cscript%3E",
	} {
		resp, _ := d.get("ana", path, pageLoad, nil)
		require.Equal(t, http.StatusFound, resp.StatusCode, path)
		assert.Equal(t, want, resp.Header.Get("Location"), path)
	}
}

// nilPairer breaks the Pairer contract: no error and no session.
type nilPairer struct{}

func (nilPairer) Pair(context.Context, t3fleet.Instance) (*pairing.Session, error) { return nil, nil }

func TestPairerWithoutSessionIsAFailure(t *testing.T) {
	router := mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: "http://127.0.0.1:1"}}
	srv := httptest.NewServer(pairing.NewHandler(router, nilPairer{}, pairing.HandlerOptions{}))
	t.Cleanup(srv.Close)
	d := &dispatch{t: t, url: srv.URL}
	resp, _ := d.get("ana", "/", pageLoad, nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
}

// Whatever Pairer is plugged in, only t3 session cookies with a value are
// relayed to the browser; a pairing that yields none is a failed one.
func TestHandlerRelaysOnlySessionCookies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cookies []*http.Cookie
		status  int
		relayed []string
	}{
		{"a stray cookie beside the session", []*http.Cookie{{Name: "t3_session", Value: "v", Path: "/"}, {Name: "tracking", Value: "x", Path: "/"}},
			http.StatusFound, []string{"t3_session"}},
		{"only an empty session cookie", []*http.Cookie{{Name: "t3_session", Value: "", Path: "/"}}, http.StatusBadGateway, nil},
		{"only a stray cookie", []*http.Cookie{{Name: "tracking", Value: "x", Path: "/"}}, http.StatusBadGateway, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pairer := pairerFunc(func(context.Context, t3fleet.Instance) (*pairing.Session, error) {
				return &pairing.Session{Cookies: tc.cookies, Endpoint: pairing.EndpointBrowserSession}, nil
			})
			h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: "http://127.0.0.1:1"}},
				pairer, pairing.HandlerOptions{Prober: cookieProber{}})
			url := startFront(t, h, pairing.FrontOptions{})
			resps := rawExchange(t, url, "GET /x HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nSec-Fetch-Dest: document\r\n\r\n", "GET")
			require.Equal(t, tc.status, resps[0].StatusCode)
			var names []string
			for _, c := range resps[0].Cookies() {
				names = append(names, c.Name)
			}
			require.Equal(t, tc.relayed, names)
		})
	}
}

type pairerFunc func(context.Context, t3fleet.Instance) (*pairing.Session, error)

func (f pairerFunc) Pair(ctx context.Context, in t3fleet.Instance) (*pairing.Session, error) {
	return f(ctx, in)
}
