package pairing_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/pairing"
)

// connCounter is an httptest server that counts the connections it accepted
// and closed.
type connCounter struct {
	srv            *httptest.Server
	opened, closed atomic.Int64
}

func newCountedServer(t *testing.T, h http.HandlerFunc) *connCounter {
	t.Helper()
	cc := &connCounter{}
	cc.srv = httptest.NewUnstartedServer(h)
	cc.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			cc.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			cc.closed.Add(1)
		}
	}
	cc.srv.Start()
	t.Cleanup(cc.srv.Close)
	return cc
}

func TestUpstreamTransportResponses(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB, more than one buffer
	cc := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Agent", r.UserAgent())
		w.Header().Set("X-Multi", strings.Join(r.Header.Values("X-Multi"), ","))
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		case "/chunked":
			for i := range 3 {
				fmt.Fprintf(w, "part%d;", i)
				w.(http.Flusher).Flush()
			}
		case "/big":
			io.WriteString(w, big)
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.WriteHeader(http.StatusNotModified)
		case "/hints":
			w.Header().Set("Link", "</app.js>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "after hints")
		case "/query":
			io.WriteString(w, r.URL.RawQuery)
		case "/post":
			b, _ := io.ReadAll(r.Body)
			io.WriteString(w, "got "+string(b))
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		default:
			http.NotFound(w, r)
		}
	})
	tr := pairing.NewUpstreamTransport()
	t.Cleanup(tr.CloseIdleConnections)

	cases := []struct {
		name, method, path, body string
		header                   http.Header
		host                     string
		wantStatus               int
		wantBody                 string
		wantHeader               map[string]string
		wantTrailer              string
	}{
		{name: "content length", method: "GET", path: "/length", wantStatus: 200, wantBody: "hello"},
		{name: "chunked", method: "GET", path: "/chunked", wantStatus: 200, wantBody: "part0;part1;part2;"},
		{name: "large body", method: "GET", path: "/big", wantStatus: 200, wantBody: big},
		{name: "trailer", method: "GET", path: "/trailer", wantStatus: 200, wantBody: "body", wantTrailer: "42"},
		{name: "head", method: "HEAD", path: "/length", wantStatus: 200, wantBody: ""},
		{name: "head chunked", method: "HEAD", path: "/chunked", wantStatus: 200, wantBody: ""},
		{name: "204", method: "GET", path: "/nocontent", wantStatus: 204},
		{name: "304", method: "GET", path: "/notmodified", wantStatus: 304},
		{name: "1xx skipped", method: "GET", path: "/hints", wantStatus: 200, wantBody: "after hints"},
		{name: "query kept", method: "GET", path: "/query?a=1&b=%2F", wantStatus: 200, wantBody: "a=1&b=%2F"},
		{name: "404", method: "GET", path: "/missing", wantStatus: 404, wantBody: "404 page not found\n"},
		{name: "host kept", method: "GET", path: "/length", host: "browser.example:3780", wantStatus: 200,
			wantBody: "hello", wantHeader: map[string]string{"X-Host": "browser.example:3780"}},
		{name: "headers sent", method: "GET", path: "/length", header: http.Header{"X-Multi": {"a", "b"}, "User-Agent": {"wrk"}},
			wantStatus: 200, wantBody: "hello", wantHeader: map[string]string{"X-Multi": "a,b", "X-Agent": "wrk"}},
		{name: "empty user agent", method: "GET", path: "/length", header: http.Header{"User-Agent": {""}},
			wantStatus: 200, wantBody: "hello", wantHeader: map[string]string{"X-Agent": ""}},
		{name: "post body (fallback)", method: "POST", path: "/post", body: "credential", wantStatus: 200, wantBody: "got credential"},
		{name: "upstream says close", method: "GET", path: "/close", wantStatus: 200, wantBody: "bye"},
		{name: "options", method: "OPTIONS", path: "/length", wantStatus: 200, wantBody: "hello",
			wantHeader: map[string]string{"X-Method": "OPTIONS"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, cc.srv.URL+tc.path, body)
			require.NoError(t, err)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			req.Host = tc.host
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, tc.wantStatus, resp.StatusCode)
			assert.Equal(t, tc.wantBody, string(got))
			for k, v := range tc.wantHeader {
				assert.Equal(t, v, resp.Header.Get(k), k)
			}
			if tc.wantTrailer != "" {
				assert.Equal(t, tc.wantTrailer, resp.Trailer.Get("X-Sum"))
			}
		})
	}
	// Everything but the "close" case and the fallback's POST reused one
	// keep-alive connection.
	assert.LessOrEqual(t, cc.opened.Load(), int64(4), "connections opened")
}

func TestUpstreamTransportReusesConnections(t *testing.T) {
	cc := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tr := pairing.NewUpstreamTransport()
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	for range 50 {
		resp, err := client.Get(cc.srv.URL + "/")
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
	}
	assert.Equal(t, int64(1), cc.opened.Load())
}

func TestUpstreamTransportMaxIdlePerHost(t *testing.T) {
	release := make(chan struct{})
	cc := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "ok")
	})
	tr := &pairing.UpstreamTransport{MaxIdleConnsPerHost: 2}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			resp, err := client.Get(cc.srv.URL + "/")
			if assert.NoError(t, err) {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	require.Eventually(t, func() bool { return cc.opened.Load() == 5 }, 10*time.Second, 5*time.Millisecond)
	close(release)
	wg.Wait()
	require.Eventually(t, func() bool { return cc.closed.Load() == 3 }, 10*time.Second, 5*time.Millisecond,
		"the pool keeps 2 of 5 connections")
}

// oneShotServer answers one request per connection, with a Content-Length
// and no "Connection: close", then closes: what an instance whose keep-alive
// timeout just expired looks like to a pooled connection. It counts the
// requests served and the connections it closed.
func oneShotServer(t *testing.T) (string, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	var served, closed atomic.Int64
	url := rawInstance(t, func(c net.Conn) {
		defer func() { c.Close(); closed.Add(1) }()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		served.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	return url, &served, &closed
}

func TestUpstreamTransportRetriesDeadPooledConn(t *testing.T) {
	url, served, closed := oneShotServer(t)
	tr := pairing.NewUpstreamTransport()
	t.Cleanup(tr.CloseIdleConnections)
	for i := range 5 {
		resp, err := tr.RoundTrip(must(http.NewRequest("GET", url+"/", nil)))
		require.NoError(t, err, "request %d", i)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, "ok", string(b))
		// Let the instance close its side before the next request takes
		// the pooled conn.
		eventually(t, func() bool { return closed.Load() == int64(i+1) }, "the instance closes the connection")
	}
	assert.Equal(t, int64(5), served.Load())
}

func TestUpstreamTransportCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/trickle" {
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	tr := pairing.NewUpstreamTransport()
	t.Cleanup(tr.CloseIdleConnections)

	t.Run("waiting for the head", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := tr.RoundTrip(must(http.NewRequestWithContext(ctx, "GET", srv.URL+"/hang", nil)))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("reading the body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := tr.RoundTrip(must(http.NewRequestWithContext(ctx, "GET", srv.URL+"/trickle", nil)))
		require.NoError(t, err)
		buf := make([]byte, 5)
		_, err = io.ReadFull(resp.Body, buf)
		require.NoError(t, err)
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err = io.ReadAll(resp.Body)
		require.ErrorIs(t, err, context.Canceled)
		resp.Body.Close()
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := tr.RoundTrip(must(http.NewRequestWithContext(ctx, "GET", srv.URL+"/", nil)))
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("a body closed early does not block", func(t *testing.T) {
		resp, err := tr.RoundTrip(must(http.NewRequest("GET", srv.URL+"/trickle", nil)))
		require.NoError(t, err)
		done := make(chan struct{})
		go func() { resp.Body.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close drained an endless body")
		}
	})
}

func TestUpstreamTransportGot1xx(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.js>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "page")
	}))
	t.Cleanup(srv.Close)
	tr := pairing.NewUpstreamTransport()
	t.Cleanup(tr.CloseIdleConnections)
	var got []int
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error { got = append(got, code); return nil }})
	resp, err := tr.RoundTrip(must(http.NewRequestWithContext(ctx, "GET", srv.URL+"/", nil)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []int{http.StatusEarlyHints}, got)
}

func TestUpstreamTransportDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	tr := pairing.NewUpstreamTransport()
	_, err = tr.RoundTrip(must(http.NewRequest("GET", "http://"+addr+"/", nil)))
	var opErr *net.OpError
	require.True(t, errors.As(err, &opErr), "got %v", err)
}

// Against the fake t3: its page, an asset and the exchange POST, through the
// transport and through a handler using it by default.
func TestUpstreamTransportT3Test(t *testing.T) {
	srv := t3test.NewServer(t.TempDir(), t3test.Options{Era: t3test.EraE, User: "emil.barzin"})
	t.Cleanup(srv.Close)
	tr := pairing.NewUpstreamTransport()
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	for _, p := range []string{"/", "/assets/app.js", "/api/auth/session"} {
		viaUs, err := client.Get(srv.URL + p)
		require.NoError(t, err)
		b1, _ := io.ReadAll(viaUs.Body)
		viaUs.Body.Close()
		direct, err := http.Get(srv.URL + p)
		require.NoError(t, err)
		b2, _ := io.ReadAll(direct.Body)
		direct.Body.Close()
		assert.Equal(t, direct.StatusCode, viaUs.StatusCode, p)
		assert.Equal(t, string(b2), string(b1), p)
	}
	cred, err := srv.Mint(0)
	require.NoError(t, err)
	resp, err := client.Post(srv.URL+"/api/auth/browser-session", "application/json",
		strings.NewReader(fmt.Sprintf(`{"credential":%q}`, cred)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotEmpty(t, resp.Cookies())
}

func must(r *http.Request, err error) *http.Request {
	if err != nil {
		panic(err)
	}
	return r
}

// Pooled connections idle past IdleConnTimeout are closed whether or not
// the pool is used meanwhile: after a burst, light traffic only ever takes
// the newest, and a user who left sends none; the rest would stay open
// (half-closed by the instance, one descriptor each) for good.
func TestUpstreamTransportClosesExpiredIdleConns(t *testing.T) {
	for _, traffic := range []bool{false, true} {
		t.Run(fmt.Sprintf("traffic=%v", traffic), func(t *testing.T) {
			release := make(chan struct{})
			var slow atomic.Bool
			slow.Store(true)
			cc := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) {
				if slow.Load() {
					<-release
				}
				io.WriteString(w, "ok")
			})
			tr := &pairing.UpstreamTransport{IdleConnTimeout: 300 * time.Millisecond}
			t.Cleanup(tr.CloseIdleConnections)
			client := &http.Client{Transport: tr}
			get := func() {
				resp, err := client.Get(cc.srv.URL + "/")
				if assert.NoError(t, err) {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			var wg sync.WaitGroup
			for range 5 {
				wg.Go(get)
			}
			require.Eventually(t, func() bool { return cc.opened.Load() == 5 }, 10*time.Second, 5*time.Millisecond)
			slow.Store(false)
			close(release)
			wg.Wait()
			require.Eventually(t, func() bool {
				if traffic {
					get()
				}
				return cc.closed.Load() >= 4
			}, 5*time.Second, 50*time.Millisecond, "idle connections past IdleConnTimeout still open")
		})
	}
}
