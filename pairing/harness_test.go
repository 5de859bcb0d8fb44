package pairing_test

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
	"github.com/t3fleet/t3fleet/sessionprobe"
)

// syncBuffer is a log sink safe for the handler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rawInstance is an instance written at the byte level: a listener on
// loopback whose every connection goes to serve, on a goroutine of its own
// (serve closes it). It returns the instance's base URL.
func rawInstance(t testing.TB, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return "http://" + ln.Addr().String()
}

// dispatch is a Handler under test behind a real listener, with fake
// instances, a fake minter, captured logs and a private metrics registry.
type dispatch struct {
	t      testing.TB
	url    string
	minter *fakeMinter
	pairer *pairing.ExchangePairer
	logs   *syncBuffer
	reg    *prometheus.Registry
	router mapRouter
}

// newDispatch starts a dispatch routing each SSO user to its instance (OS
// user = SSO user). opts may adjust the handler options before it starts.
func newDispatch(t testing.TB, instances map[string]*fakeInstance, opts func(*pairing.HandlerOptions)) *dispatch {
	t.Helper()
	return newDispatchOn(t, instances, opts, pairing.FrontOptions{})
}

// newDispatchOn is newDispatch served with the Front options fo (e.g. the
// fast path off).
func newDispatchOn(t testing.TB, instances map[string]*fakeInstance, opts func(*pairing.HandlerOptions), fo pairing.FrontOptions) *dispatch {
	t.Helper()
	d := &dispatch{t: t, minter: &fakeMinter{instances: map[string]*fakeInstance{}}, logs: &syncBuffer{},
		reg: prometheus.NewRegistry(), router: mapRouter{}}
	for user, f := range instances {
		d.minter.instances[user] = f
		d.router[user] = t3fleet.Instance{User: user, OSUser: user, BaseURL: f.srv.URL}
	}
	d.pairer = pairing.NewPairer(d.minter, pairing.PairerOptions{})
	o := pairing.HandlerOptions{Logger: slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Registerer: d.reg}
	if opts != nil {
		opts(&o)
	}
	d.url = startFront(t, pairing.NewHandler(d.router, d.pairer, o), fo)
	return d
}

// serveModes are the two ways a Handler is served: through a Front with its
// fast path (as examples/dispatch serves it) and on net/http's server alone.
var serveModes = []struct {
	name        string
	disableFast bool
}{{"fast", false}, {"net-http", true}}

// startFront serves h through a Front on loopback and returns its URL.
func startFront(t testing.TB, h *pairing.Handler, opts pairing.FrontOptions) string {
	t.Helper()
	_, ln := serveFront(t, h, opts)
	return "http://" + ln.Addr().String()
}

// serveFront is startFront for a test that also shuts the Front down or
// watches its listener.
func serveFront(t testing.TB, h *pairing.Handler, opts pairing.FrontOptions) (*pairing.Front, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := pairing.NewFront(h, opts)
	served := make(chan error, 1)
	go func() { served <- f.Serve(ln) }()
	t.Cleanup(func() {
		f.Close()
		require.ErrorIs(t, <-served, http.ErrServerClosed)
	})
	return f, ln
}

// kind of request a browser makes.
const (
	pageLoad = "page"
	fetchXHR = "xhr"
	asset    = "asset"
	curlLike = "curl"
)

// get sends one request as user (no redirects followed) with the given
// cookies and returns status, headers and body.
func (d *dispatch) get(user, path, kind string, cookies []*http.Cookie) (*http.Response, string) {
	d.t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.url+path, nil)
	require.NoError(d.t, err)
	if user != "" {
		req.Header.Set(pairing.DefaultUserHeader, user)
	}
	switch kind {
	case pageLoad:
		req.Header.Set("Sec-Fetch-Dest", "document")
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	case fetchXHR:
		req.Header.Set("Sec-Fetch-Dest", "empty")
		req.Header.Set("Accept", "*/*")
	case asset:
		req.Header.Set("Sec-Fetch-Dest", "script")
		req.Header.Set("Accept", "*/*")
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirect.Do(req)
	require.NoError(d.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// sessionCookies returns the t3 session cookies a response set (live ones).
func sessionCookies(resp *http.Response) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range resp.Cookies() {
		if sessionprobe.IsSessionCookieName(c.Name) && c.MaxAge >= 0 && c.Value != "" {
			out = append(out, c)
		}
	}
	return out
}
