package pairing_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
	"github.com/t3fleet/t3fleet/sessionprobe"
)

// scriptedInstance answers each path with a raw response written as given,
// so the tests can send what net/http's server never would.
type scriptedInstance struct {
	ln    net.Listener
	conns atomic.Int64
	mu    sync.Mutex
	open  []net.Conn
	seen  []*http.Request
	body  []string          // of each request seen
	resp  map[string]string // path -> raw response
}

func newScriptedInstance(t *testing.T, resp map[string]string) *scriptedInstance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &scriptedInstance{ln: ln, resp: resp}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.open {
			c.Close() // the dispatch's pooled connections
		}
		s.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			wg.Go(func() { s.serve(c) })
		}
	})
	return s
}

func (s *scriptedInstance) URL() string { return "http://" + s.ln.Addr().String() }

func (s *scriptedInstance) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		b, _ := io.ReadAll(req.Body)
		s.mu.Lock()
		s.seen = append(s.seen, req)
		s.body = append(s.body, string(b))
		raw, ok := s.resp[req.URL.Path]
		s.mu.Unlock()
		if !ok {
			raw = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
		}
		if req.Method == http.MethodHead { // no body after the last (final) head
			last := max(strings.LastIndex(raw, "HTTP/1."), 0)
			if end := strings.Index(raw[last:], "\r\n\r\n"); end >= 0 {
				raw = raw[:last+end+4]
			}
		}
		if _, err := io.WriteString(c, raw); err != nil {
			return
		}
		if strings.Contains(raw, "X-Then-Close") {
			return
		}
	}
}

func (s *scriptedInstance) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		return nil
	}
	return s.seen[len(s.seen)-1]
}

// frontUnderTest is a Front over one user ("ana") whose instance is inst,
// with a prober that calls "live" cookies valid and "dead" ones invalid,
// and a Fallback that counts what reaches net/http.
type frontUnderTest struct {
	t         testing.TB
	url       string
	fallbacks atomic.Int64
	reg       *prometheus.Registry
}

type cookieProber struct{}

func (cookieProber) Check(_ context.Context, _ t3fleet.Instance, cs []*http.Cookie) (sessionprobe.Verdict, error) {
	if cs[0].Value == "dead" {
		return sessionprobe.Invalid, nil
	}
	return sessionprobe.Valid, nil
}

func newFrontUnderTest(t *testing.T, baseURL string, opts pairing.FrontOptions, hopts func(*pairing.HandlerOptions)) *frontUnderTest {
	t.Helper()
	ft := &frontUnderTest{t: t, reg: prometheus.NewRegistry()}
	ho := pairing.HandlerOptions{Prober: cookieProber{}, Registerer: ft.reg}
	if hopts != nil {
		hopts(&ho)
	}
	minter := &fakeMinter{instances: map[string]*fakeInstance{}}
	h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: baseURL}},
		pairing.NewPairer(minter, pairing.PairerOptions{}), ho)
	// As examples/dispatch: a mux with /metrics beside the Handler, the
	// path listed as reserved.
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.Handle("/", h)
	opts.Reserved = []string{"/metrics"}
	opts.Fallback = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ft.fallbacks.Add(1)
		mux.ServeHTTP(w, r)
	})
	ft.url = startFront(t, h, opts)
	return ft
}

func (ft *frontUnderTest) handoffs(reason string) float64 {
	return gatherValue(ft.t, ft.reg, pairing.MetricHandoffs, map[string]string{"reason": reason})
}

// rawExchange sends raw requests on one connection and reads one response
// per request.
func rawExchange(t *testing.T, url string, raw string, methods ...string) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, raw)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	var out []*http.Response
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		out = append(out, resp)
	}
	return out
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return string(b)
}

const liveAsset = "GET /assets/app.js?v=1 HTTP/1.1\r\nHost: t3.example\r\nX-Authentik-Username: ana\r\n" +
	"Cookie: t3_session=live\r\nSec-Fetch-Dest: script\r\n\r\n"

// The steady state never reaches net/http: assets and live page loads on a
// kept-alive connection, over one pooled connection to the instance.
func TestFrontCarriesSteadyStateItself(t *testing.T) {
	inst := newScriptedInstance(t, nil)
	ft := newFrontUnderTest(t, inst.URL(), pairing.FrontOptions{}, nil)
	page := "GET /?tab=2 HTTP/1.1\r\nHost: t3.example\r\nX-Authentik-Username: ana@corp.example\r\n" +
		"Cookie: other=1; t3_session=live\r\nSec-Fetch-Dest: document\r\nAccept: text/html\r\n\r\n"
	head := strings.Replace(liveAsset, "GET ", "HEAD ", 1)
	var reqs strings.Builder
	methods := []string{}
	for range 20 {
		reqs.WriteString(liveAsset)
		reqs.WriteString(page)
		reqs.WriteString(head)
		methods = append(methods, "GET", "GET", "HEAD")
	}
	for _, resp := range rawExchange(t, ft.url, reqs.String(), methods...) {
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.Zero(t, ft.fallbacks.Load(), "nothing went to net/http")
	assert.EqualValues(t, 1, inst.conns.Load(), "one pooled connection to the instance")
	seen := inst.last()
	require.NotNil(t, seen)
	assert.Empty(t, seen.Header.Values(pairing.DefaultUserHeader))
	assert.Equal(t, "127.0.0.1", seen.Header.Get("X-Forwarded-For"))
}

// Pairings and refusals of plain requests are answered on the fast path;
// everything else goes to net/http with the bytes already read, and is
// answered exactly as the Handler answers it.
func TestFrontHandsOffTheRest(t *testing.T) {
	inst := newScriptedInstance(t, nil)
	cases := []struct {
		name, raw, reason string // reason "": answered on the fast path
		status            int
		// closes: net/http closes the connection after answering, so the
		// request goes once; byServer: net/http's server answers before
		// any handler runs.
		closes, byServer bool
	}{
		// The minter knows no instance: a pairing ends in the Handler's 500.
		{"first visit pairs", "GET / HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nSec-Fetch-Dest: document\r\n\r\n",
			"", http.StatusInternalServerError, false, false},
		{"dead cookie re-pairs", "GET / HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=dead\r\nSec-Fetch-Dest: document\r\n\r\n",
			"", http.StatusInternalServerError, false, false},
		{"unknown user", "GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: bob\r\nCookie: t3_session=live\r\n\r\n",
			"", http.StatusForbidden, false, false},
		{"bad user name", "GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ../etc\r\nCookie: t3_session=live\r\n\r\n",
			"", http.StatusBadRequest, false, false},
		{"look-alike identity header", "GET /a HTTP/1.1\r\nHost: h\r\nX_authentik_username: ana\r\nCookie: t3_session=live\r\n\r\n",
			pairing.HandoffRequest, http.StatusBadRequest, false, false},
		{"identity header twice", "GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nX-Authentik-Username: root\r\nCookie: t3_session=live\r\n\r\n",
			pairing.HandoffRequest, http.StatusBadRequest, false, false},
		{"no identity header", "GET /a HTTP/1.1\r\nHost: h\r\nCookie: t3_session=live\r\n\r\n",
			pairing.HandoffRequest, http.StatusUnauthorized, false, false},
		{"body with a length", "POST /api/x HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nContent-Length: 2\r\n\r\nhi",
			"", http.StatusOK, false, false},
		{"refused body", "POST /api/x HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: bob\r\nContent-Length: 2\r\n\r\nhi",
			pairing.HandoffRequest, http.StatusForbidden, false, false},
		{"chunked body", "POST /api/x HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
			pairing.HandoffRequest, http.StatusOK, false, false},
		{"body expecting 100-continue (an interim answer)", "PUT /api/x HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
			pairing.HandoffRequest, http.StatusContinue, true, false},
		{"two lengths", "POST /api/x HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
			pairing.HandoffRequest, http.StatusOK, false, false},
		{"GET with a length", "GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nContent-Length: 0\r\n\r\n",
			pairing.HandoffRequest, http.StatusOK, false, false},
		{"hop-by-hop field", "GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nConnection: X-Private\r\n\r\n",
			pairing.HandoffRequest, http.StatusOK, false, false},
		{"HTTP/1.0", "GET /a HTTP/1.0\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\n\r\n",
			pairing.HandoffRequest, http.StatusOK, true, false},
		{"escaped path", "GET /a%2F..%2Fb HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\n\r\n",
			pairing.HandoffRequest, http.StatusOK, false, false},
		{"no Host", "GET /a HTTP/1.1\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\n\r\n",
			pairing.HandoffRequest, http.StatusBadRequest, true, true},
		{"obs-fold", "GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\n root\r\nCookie: t3_session=live\r\n\r\n",
			pairing.HandoffRequest, http.StatusBadRequest, false, false},
		{"head larger than the buffer", "GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nX-Big: " +
			strings.Repeat("b", 20<<10) + "\r\n\r\n", pairing.HandoffRequest, http.StatusOK, false, false},
		{"reserved path", "GET /metrics HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\n\r\n",
			pairing.HandoffReserved, http.StatusTeapot, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ft := newFrontUnderTest(t, inst.URL(), pairing.FrontOptions{}, nil)
			// The same request again on the same connection: a fast-path
			// answer leaves it there, a hand-off leaves it with net/http.
			raw, methods := c.raw+c.raw, []string{"GET", "GET"}
			if c.closes {
				raw, methods = c.raw, methods[:1]
			}
			resps := rawExchange(t, ft.url, raw, methods...)
			for _, r := range resps {
				assert.Equal(t, c.status, r.StatusCode, body(t, r))
			}
			switch {
			case c.reason == "":
				assert.Zero(t, ft.fallbacks.Load())
			case !c.byServer:
				assert.EqualValues(t, len(methods), ft.fallbacks.Load())
			}
			for _, reason := range []string{pairing.HandoffRequest, pairing.HandoffReserved, pairing.HandoffTarget, pairing.HandoffUntrustedPeer} {
				want := 0
				if reason == c.reason {
					want = 1
				}
				assert.EqualValues(t, want, ft.handoffs(reason), reason)
			}
		})
	}
}

// A head that arrives in pieces is still carried; one that never completes
// is dropped after ReadHeaderTimeout, and a connection idle for longer than
// IdleTimeout is closed.
func TestFrontTimeouts(t *testing.T) {
	inst := newScriptedInstance(t, nil)
	// Each timeout is short on its own front, so that the other (a minute)
	// cannot stand in for it.
	ft := newFrontUnderTest(t, inst.URL(), pairing.FrontOptions{ReadHeaderTimeout: time.Minute, IdleTimeout: 600 * time.Millisecond}, nil)
	slow := newFrontUnderTest(t, inst.URL(), pairing.FrontOptions{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute}, nil)
	dial := func(ft *frontUnderTest) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", strings.TrimPrefix(ft.url, "http://"))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		return c, bufio.NewReader(c)
	}
	c, br := dial(ft)
	half := len(liveAsset) / 2
	_, err := io.WriteString(c, liveAsset[:half])
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	_, err = br.Peek(1)
	require.Error(t, err, "no answer to half a head")
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, liveAsset[half:])
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "ok", body(t, resp))
	assert.Zero(t, ft.fallbacks.Load())

	// The same connection, now idle: closed once IdleTimeout has passed.
	start := time.Now()
	_, err = br.Peek(1)
	require.ErrorIs(t, err, io.EOF)
	assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond)

	// A head that stops halfway: closed after ReadHeaderTimeout.
	c, br = dial(slow)
	_, err = io.WriteString(c, liveAsset[:half])
	require.NoError(t, err)
	start = time.Now()
	_, err = br.Peek(1)
	require.ErrorIs(t, err, io.EOF)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// The pairing's 302 sends the browser back to the path it asked for, as
// it sent it, on both paths (url.URL escapes !*'() unless told otherwise).
func TestPairingLocationKeepsThePathAsSent(t *testing.T) {
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: "http://127.0.0.1:1"}},
				heldPairer{}, pairing.HandlerOptions{Prober: cookieProber{}})
			url := startFront(t, h, pairing.FrontOptions{DisableFast: m.disableFast})
			for _, p := range []string{"/a(b)!*'", "/plain/path", "/x;y=1,z@w"} {
				resps := rawExchange(t, url, "GET "+p+"?q=1 HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nSec-Fetch-Dest: document\r\n\r\n", "GET")
				require.Equal(t, http.StatusFound, resps[0].StatusCode)
				require.Equal(t, p+"?q=1", resps[0].Header.Get("Location"))
			}
		})
	}
}

// A head whose lines (or only its last, blank line) end in a bare LF is
// one net/http's server reads and answers. The fast path finds its end too
// and hands it to net/http, as it does anything unusual, instead of
// waiting for a CRLF CRLF that never comes until ReadHeaderTimeout drops
// the connection unanswered.
func TestBareLFHeadIsAnswered(t *testing.T) {
	inst := newScriptedInstance(t, nil)
	heads := []struct{ name, raw string }{
		{"every line LF", "GET /a HTTP/1.1\nHost: h\nX-Authentik-Username: ana\nCookie: t3_session=live\nSec-Fetch-Dest: script\n\n"},
		{"blank line LF", "GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nSec-Fetch-Dest: script\r\n\n"},
	}
	for _, m := range serveModes {
		for _, hd := range heads {
			t.Run(m.name+"/"+hd.name, func(t *testing.T) {
				h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: inst.URL()}}, nil,
					pairing.HandlerOptions{Prober: cookieProber{}})
				url := startFront(t, h, pairing.FrontOptions{DisableFast: m.disableFast, ReadHeaderTimeout: time.Second})
				resp := rawExchange(t, url, hd.raw, http.MethodGet)[0]
				assert.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
			})
		}
	}
}
