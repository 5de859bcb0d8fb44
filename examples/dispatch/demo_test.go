package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// browser is an http.Client with a cookie jar that sends navigation headers,
// standing in for a browser without one.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, client: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

// do sends a request of kind "page" or "xhr" and returns the final
// response's status, URL path and body, following redirects.
func (b *browser) do(method, rawURL, kind string, form url.Values) (int, string, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	require.NoError(b.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if kind == "page" {
		req.Header.Set("Sec-Fetch-Dest", "document")
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	} else {
		req.Header.Set("Sec-Fetch-Dest", "empty")
		req.Header.Set("Accept", "*/*")
	}
	resp, err := b.client.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return resp.StatusCode, resp.Request.URL.Path, string(data)
}

// TestDemoPicksUserPairsAndLands drives the demo as a person would, without
// a browser: pick a user, get paired, land on that user's instance; the
// page's API calls and WebSocket pass through; a wiped session re-pairs on
// the next reload.
func TestDemoPicksUserPairsAndLands(t *testing.T) {
	logs := &lockedBuffer{}
	d, err := StartDemo(context.Background(), DemoOptions{Dir: t.TempDir(), Logger: newLogger("text", logs)})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	require.Len(t, d.Users, 3)

	for _, u := range d.Users {
		t.Run(u.SSO, func(t *testing.T) {
			b := newBrowser(t)
			status, path, body := b.do(http.MethodGet, d.FrontURL+"/", "page", nil)
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, DemoLoginPath, path, "not signed in: the login page")
			assert.Contains(t, body, `value="`+u.SSO+`"`)

			status, path, body = b.do(http.MethodPost, d.FrontURL+DemoLoginPath+"login", "page", url.Values{"user": {u.SSO}})
			require.Equal(t, http.StatusOK, status, body)
			assert.Equal(t, "/", path)
			assert.Contains(t, body, `<dd id="user">`+u.SSO+`</dd>`, "landed on the user's own instance")
			assert.Contains(t, body, `<dd id="era">`+string(u.Era)+`</dd>`)
			assert.Equal(t, 1, u.Server.Exchanges(), "paired once")
			assert.Contains(t, logs.String(), "paired user="+u.SSO+" endpoint="+u.Era.PairingPath())

			front, _ := url.Parse(d.FrontURL)
			var names []string
			for _, c := range b.client.Jar.Cookies(front) {
				names = append(names, c.Name)
			}
			assert.Contains(t, names, u.Server.CookieName(), "the instance's own cookie name reached the browser")

			status, _, body = b.do(http.MethodGet, d.FrontURL+"/api/auth/session", "xhr", nil)
			require.Equal(t, http.StatusOK, status)
			assert.Contains(t, body, `"authenticated":true`)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(d.FrontURL, "http")+"/ws",
				&websocket.DialOptions{HTTPClient: b.client, HTTPHeader: http.Header{"Origin": {d.FrontURL}}})
			require.NoError(t, err, "WebSocket through the front and the dispatch")
			require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte("ping")))
			_, msg, err := ws.Read(ctx)
			require.NoError(t, err)
			assert.NotEmpty(t, msg)
			ws.Close(websocket.StatusNormalClosure, "")

			require.NoError(t, u.Server.WipeSessions())
			status, path, body = b.do(http.MethodGet, d.FrontURL+"/chat?x=1", "page", nil)
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, "/chat", path)
			assert.Contains(t, body, `<dd id="user">`+u.SSO+`</dd>`)
			assert.Equal(t, 2, u.Server.Exchanges(), "the wiped session was re-paired")
		})
	}
	assert.Contains(t, logs.String(), `msg="ws open"`)
}

func TestDemoServesOps(t *testing.T) {
	d, err := StartDemo(context.Background(), DemoOptions{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	// Directly and through the demo's front (its login page links them),
	// with no user picked.
	for _, base := range []string{d.DispatchURL, d.FrontURL} {
		for path, want := range map[string]string{"/healthz": "ok", "/metrics": "t3fleet_dispatch_pairs_total"} {
			resp, err := http.Get(base + path)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, base+path)
			assert.True(t, strings.Contains(string(b), want), "%s lacks %q", base+path, want)
		}
	}
}

// Restart swaps a user's instance while the front serves that user (the
// reconnecting page asks every 250 ms): User then returns the new server,
// and under -race nothing reads the old one unguarded.
func TestDemoRestartWhileTheFrontServes(t *testing.T) {
	ctx := context.Background()
	demo, err := StartDemo(ctx, DemoOptions{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(demo.Close)
	var served atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, u := range []string{demo.FrontURL + "/api/x", demo.URL} { // an instance's page, the login page
				req, _ := http.NewRequest(http.MethodGet, u, nil)
				req.AddCookie(&http.Cookie{Name: demoCookie, Value: "emil.barzin"})
				if resp, err := http.DefaultClient.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					served.Add(1)
				}
			}
		}
	}()
	require.Eventually(t, func() bool { return served.Load() >= 5 }, 10*time.Second, 5*time.Millisecond)
	srv, err := demo.Restart(ctx, "emil.barzin", t3test.Faults{})
	require.NoError(t, err)
	before := served.Load()
	require.Eventually(t, func() bool { return served.Load() >= before+5 }, 10*time.Second, 5*time.Millisecond)
	close(stop)
	wg.Wait()
	u, ok := demo.User("emil.barzin")
	require.True(t, ok)
	require.Same(t, srv, u.Server)
}
