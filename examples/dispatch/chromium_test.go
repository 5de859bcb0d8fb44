package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/internal/chromiumtest"
	"github.com/t3fleet/t3fleet/sessionprobe"
)

// Bounds of the end-to-end test: the whole test, and each wait inside it.
const (
	chromiumTestBudget = 55 * time.Second
	chromiumStepWait   = 15 * time.Second
)

// TestChromiumPairsProxiesAndRepairs drives a real headless Chromium through
// the demo: the login page (standing in for SSO) picks a user, the first
// visit pairs and lands on that user's own fake instance, whose page's fetch()
// and WebSocket go through the dispatch without a redirect; after the
// instance wipes its sessions, a reload pairs again with a new cookie.
func TestChromiumPairsProxiesAndRepairs(t *testing.T) {
	reg := prometheus.NewRegistry()
	demo, logs, browser := chromiumDemo(t, reg)

	for _, u := range demo.Users {
		t.Run(u.SSO, func(t *testing.T) {
			// A browser context of its own: the demo serves every user on
			// one origin, so cookies must not leak between users.
			tab, closeTab := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
			defer closeTab()
			nl := recordNetwork(t, tab)
			srv := u.Server
			home := demo.FrontURL + "/"

			// First visit: the SSO stand-in, then pairing, then the page.
			require.NoError(t, chromedp.Do(stepCtx(tab), chromedp.Navigate(demo.URL)))
			require.NoError(t, chromedp.Do(stepCtx(tab), chromedp.Click(loginButton(u.SSO))))
			first := waitPage(t, tab, home, u.SSO)
			require.Equal(t, string(u.Era), first.Era)

			require.Equal(t, 1, srv.Exchanges(), "one pairing exchange at the instance")
			require.GreaterOrEqual(t, srv.WebSockets(), 1, "the page's WebSocket reached the instance")
			cookie1 := sessionCookie(t, tab, demo.FrontURL, srv.CookieName())
			require.Equal(t, 1, logs.Count("msg=paired", "user="+u.SSO))
			nl.requireNoRedirect(t, "/api/auth/session", "/ws")
			require.Contains(t, nl.statuses(home), 302, "the first visit is answered with the pairing redirect")
			require.Equal(t, []int{101}, nl.wsStatuses(), "the WebSocket upgrade went through")

			// The instance forgets every session (as migration 31 does);
			// the next page load re-pairs instead of showing a dead app.
			require.NoError(t, srv.WipeSessions())
			nl.reset()
			wsBefore := srv.WebSockets()
			require.NoError(t, chromedp.Do(stepCtx(tab), chromedp.Reload()))
			waitPage(t, tab, home, u.SSO)

			require.Equal(t, 2, srv.Exchanges(), "the reload paired again")
			cookie2 := sessionCookie(t, tab, demo.FrontURL, srv.CookieName())
			require.NotEqual(t, cookie1, cookie2, "a new session cookie")
			require.Equal(t, 2, logs.Count("msg=paired", "user="+u.SSO))
			require.Greater(t, srv.WebSockets(), wsBefore)
			nl.requireNoRedirect(t, "/api/auth/session", "/ws")
			require.Contains(t, nl.statuses(home), 302, "the reload is answered with the pairing redirect")
			require.Equal(t, []int{101}, nl.wsStatuses())
		})
	}
	require.NotZero(t, counterValue(t, reg, "t3fleet_dispatch_proxied_requests_total", "kind", "websocket"),
		"the dispatch counted proxied WebSockets")
}

// TestChromiumTabReconnectsAcrossARestart: a paired tab stays open while
// its instance restarts (the nightly bump), and the instance is silent for
// its first second, accepting connections it never answers (t3code
// #12215). The page's socket drops and is opened again, and the dispatch
// holds that upgrade until the instance answers: the tab is live again
// without a reload.
func TestChromiumTabReconnectsAcrossARestart(t *testing.T) {
	demo, logs, browser := chromiumDemo(t, nil)
	tab, closeTab := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer closeTab()

	const sso = "emil.barzin"
	require.NoError(t, chromedp.Do(stepCtx(tab), chromedp.Navigate(demo.URL)))
	require.NoError(t, chromedp.Do(stepCtx(tab), chromedp.Click(loginButton(sso))))
	waitPage(t, tab, demo.FrontURL+"/", sso)

	srv, err := demo.Restart(stepCtx(tab), sso, t3test.Faults{DeafStart: time.Second}) // within the test's budget
	require.NoError(t, err)
	p := waitWS(t, tab, "echo: ping (reconnected 1)")
	require.Equal(t, "authenticated", p.Session, "the same page, never reloaded")
	require.Equal(t, 1, srv.WebSockets(), "the restarted instance took the reconnect")
	require.Equal(t, 1, logs.Count("msg=paired"), "no pairing: the session outlived the restart")
}

// waitWS re-reads the page until its #ws shows want.
func waitWS(t *testing.T, tab context.Context, want string) page {
	t.Helper()
	return pollPage(t, tab, fmt.Sprintf("ws %q", want), func(p page) bool { return p.WS == want })
}

// chromiumDemo starts the demo (its log at debug level, shown if the test
// fails; reg nil: a registry of its own) and a real headless Chromium, both
// ended with the test and within chromiumTestBudget. It skips, or fails
// under T3FLEET_REQUIRE_REAL, before anything starts when Chromium is
// missing.
func chromiumDemo(t *testing.T, reg *prometheus.Registry) (*Demo, *lockedBuffer, context.Context) {
	t.Helper()
	chromiumtest.Find(t)
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTestBudget)
	t.Cleanup(cancel)
	logs := &lockedBuffer{}
	demo, err := StartDemo(ctx, DemoOptions{
		Dir:      t.TempDir(),
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry: reg,
	})
	require.NoError(t, err)
	t.Cleanup(demo.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dispatch log:\n%s", logs.String())
		}
	})
	return demo, logs, chromiumtest.Start(t, ctx)
}

// loginButton selects the login page's button for sso. Not chromedp.ID: it
// becomes a CSS "#id", and a dot in a name ("emil.barzin") reads as a class.
func loginButton(sso string) chromedp.JSPath {
	return chromedp.JSPath("document.getElementById(" + strconv.Quote("login-"+sso) + ")")
}

// stepCtx bounds one browser action.
func stepCtx(tab context.Context) context.Context {
	ctx, cancel := context.WithTimeout(tab, chromiumStepWait)
	context.AfterFunc(ctx, cancel) // released when the step's deadline or the tab ends
	return ctx
}

// page is what the fake instance's page shows once its scripts ran.
type page struct {
	Location string `json:"location"`
	User     string `json:"user"`
	Era      string `json:"era"`
	Session  string `json:"session"`
	WS       string `json:"ws"`
}

const readPage = `(() => {
  const text = id => { const e = document.getElementById(id); return e ? e.textContent : ""; };
  return {location: location.href, user: text("user"), era: text("era"), session: text("session"), ws: text("ws")};
})()`

// waitPage re-reads the DOM until the instance page at want shows an
// authenticated session and a WebSocket echo for user.
func waitPage(t *testing.T, tab context.Context, want, user string) page {
	t.Helper()
	return pollPage(t, tab, fmt.Sprintf("%s authenticated with a WebSocket echo at %s", user, want), func(p page) bool {
		if p.Location == want && p.User == user && p.Session == "authenticated" && strings.HasPrefix(p.WS, "echo: ") {
			return true
		}
		if p.Session != "pending" && p.Session != "authenticated" && p.Session != "" {
			t.Fatalf("page at %s shows session %q (ws %q)", p.Location, p.Session, p.WS)
		}
		return false
	})
}

// pollPage re-reads the page until done says it shows what is awaited, or
// chromiumStepWait passes. A navigation (a redirect, the pairing 302, a
// reload) destroys the page's execution context, so each read is retried
// until the deadline, never slept on.
func pollPage(t *testing.T, tab context.Context, what string, done func(page) bool) page {
	t.Helper()
	deadline := time.Now().Add(chromiumStepWait)
	var last page
	var lastErr error
	for time.Now().Before(deadline) {
		rctx, cancel := context.WithTimeout(tab, 2*time.Second)
		p, err := chromedp.Run(rctx, chromedp.Evaluate[page](readPage))
		cancel()
		if err == nil {
			last = p
			if done(p) {
				return p
			}
		} else {
			lastErr = err
		}
		if err := tab.Err(); err != nil {
			t.Fatalf("browser tab ended: %v", err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-tab.Done():
		}
	}
	t.Fatalf("page never showed %s: last %+v, last error %v", what, last, lastErr)
	return last
}

// sessionCookie returns the value of the t3 session cookie named name the
// browser holds for url (HttpOnly, so read over the DevTools protocol).
func sessionCookie(t *testing.T, tab context.Context, url, name string) string {
	t.Helper()
	cookies, err := chromedp.Run(stepCtx(tab), func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
		if err != nil {
			return nil, err
		}
		return res.Cookies, nil
	})
	require.NoError(t, err)
	var names []string
	for _, c := range cookies {
		names = append(names, c.Name)
		if c.Name == name {
			require.True(t, c.HTTPOnly, "the relayed session cookie stays HttpOnly")
			require.True(t, sessionprobe.IsSessionCookieName(c.Name))
			return c.Value
		}
	}
	t.Fatalf("no cookie %s for %s; the browser has %v", name, url, names)
	return ""
}

// netEvent is one answer the browser saw: an HTTP response (or a redirect on
// the way to one), or a WebSocket handshake.
type netEvent struct {
	url    string
	status int
	ws     bool
}

// netLog records, from Chromium's side, the status of every response,
// redirect and WebSocket handshake of a tab.
type netLog struct {
	mu     sync.Mutex
	events []netEvent
	wsURLs map[network.RequestID]string
}

func recordNetwork(t *testing.T, tab context.Context) *netLog {
	t.Helper()
	l := &netLog{wsURLs: map[network.RequestID]string{}}
	// Listen (not Events): it sees each event in order, before the command
	// that follows it returns, so nothing is missed at a navigation.
	err := chromedp.Listen(tab, func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if e.RedirectResponse != nil {
				l.events = append(l.events, netEvent{url: e.RedirectResponse.URL, status: int(e.RedirectResponse.Status)})
			}
		case *network.EventResponseReceived:
			l.events = append(l.events, netEvent{url: e.Response.URL, status: int(e.Response.Status)})
		case *network.EventWebSocketCreated:
			l.wsURLs[e.RequestID] = e.URL
		case *network.EventWebSocketHandshakeResponseReceived:
			l.events = append(l.events, netEvent{url: l.wsURLs[e.RequestID], status: int(e.Response.Status), ws: true})
		}
	})
	require.NoError(t, err)
	return l
}

func (l *netLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = nil
}

// statuses of the HTTP answers (not WebSockets) to url, in order.
func (l *netLog) statuses(url string) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for _, e := range l.events {
		if !e.ws && e.url == url {
			out = append(out, e.status)
		}
	}
	return out
}

func (l *netLog) wsStatuses() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for _, e := range l.events {
		if e.ws {
			out = append(out, e.status)
		}
	}
	return out
}

// requireNoRedirect checks that every answer to a URL whose path is one of
// paths was seen, and none was a 3xx: the page's fetch() and WebSocket are
// proxied, never sent to pairing.
func (l *netLog) requireNoRedirect(t *testing.T, paths ...string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]int{}
	for _, e := range l.events {
		for _, p := range paths {
			if strings.HasSuffix(e.url, p) {
				seen[p]++
				if e.status >= 300 && e.status < 400 {
					t.Errorf("%s was answered %d: a subresource must never be redirected", e.url, e.status)
				}
			}
		}
	}
	for _, p := range paths {
		if seen[p] == 0 {
			t.Errorf("the browser saw no answer for %s; events: %+v", p, l.events)
		}
	}
}

// counterValue sums the counter name's series whose label has value.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
