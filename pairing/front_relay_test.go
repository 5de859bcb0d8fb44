package pairing_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/pairing"
)

// The fast path relays what the instance answers as the Handler on
// net/http's server does: same status, fields (but Date, which net/http
// adds) and body, for every framing and every malformed answer. Each case
// runs through both and compares.
func TestFrontRelaysAsTheHandlerDoes(t *testing.T) {
	const ct = "Content-Type: text/plain\r\n"
	responses := map[string]string{
		"/length":       "HTTP/1.1 200 OK\r\n" + ct + "Content-Length: 5\r\nX-Kept: yes\r\n\r\nhello",
		"/chunked":      "HTTP/1.1 200 OK\r\n" + ct + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
		"/trailers":     "HTTP/1.1 200 OK\r\n" + ct + "Trailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\nX-Sum: 42\r\n\r\n",
		"/until-close":  "HTTP/1.1 200 OK\r\n" + ct + "X-Then-Close: 1\r\n\r\nall of it",
		"/http10":       "HTTP/1.0 200 OK\r\n" + ct + "Content-Length: 3\r\nX-Then-Close: 1\r\n\r\nold",
		"/no-content":   "HTTP/1.1 204 No Content\r\nX-Kept: yes\r\n\r\n",
		"/not-modified": "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n",
		"/early-hints": "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 200 OK\r\n" + ct + "Content-Length: 2\r\n\r\nok",
		"/hop":         "HTTP/1.1 200 OK\r\n" + ct + "Connection: X-Hop\r\nX-Hop: drop me\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok",
		"/te-and-cl":   "HTTP/1.1 200 OK\r\n" + ct + "Content-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/status-only": "HTTP/1.1 404\r\n" + ct + "Content-Length: 0\r\n\r\n",
		"/sse":         "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 11\r\n\r\ndata: one\n\n",
		// Longer than the relay's 16 KiB buffer, and more fields than a
		// request may have: net/http relays both.
		"/long-field":  "HTTP/1.1 200 OK\r\nContent-Security-Policy: " + strings.Repeat("a", 40<<10) + "\r\n" + ct + "Content-Length: 2\r\n\r\nok",
		"/many-fields": "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Many: 1\r\n", 300) + ct + "Content-Length: 2\r\n\r\nok",
		// Malformed: both answer 502 and nothing of it reaches the browser.
		"/bad-length":   "HTTP/1.1 200 OK\r\n" + ct + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"/bad-te":       "HTTP/1.1 200 OK\r\n" + ct + "Transfer-Encoding: gzip\r\n\r\nxx",
		"/bad-status":   "HTTP/1.1 2000 OK\r\n\r\n",
		"/bad-field":    "HTTP/1.1 200 OK\r\nBad Field: x\r\nContent-Length: 0\r\n\r\n",
		"/switch":       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"/not-http":     "SSH-2.0-OpenSSH\r\n\r\n",
		"/head-length":  "HTTP/1.1 200 OK\r\n" + ct + "Content-Length: 1234\r\nX-Then-Close: 1\r\n\r\n",
		"/closed-early": "HTTP/1.1 200 OK\r\n" + ct + "Content-Length: 100\r\nX-Then-Close: 1\r\n\r\nshort",
	}
	inst := newScriptedInstance(t, responses)
	fronts := map[string]*frontUnderTest{}
	for _, m := range serveModes {
		fronts[m.name] = newFrontUnderTest(t, inst.URL(), pairing.FrontOptions{DisableFast: m.disableFast}, nil)
	}
	type outcome struct {
		status  int
		header  http.Header
		body    string
		trailer http.Header
		err     string
	}
	get := func(t *testing.T, url, method, path string) outcome {
		var payload io.Reader
		if method == http.MethodPost {
			payload = strings.NewReader("a=1&b=2")
		}
		req, err := http.NewRequest(method, url+path, payload)
		require.NoError(t, err)
		req.Host = "t3.example"
		req.Header.Set(pairing.DefaultUserHeader, "ana")
		req.Header.Set("Cookie", "t3_session=live")
		req.Header.Set("Sec-Fetch-Dest", "script")
		client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: noRedirect.CheckRedirect}
		resp, err := client.Do(req)
		if err != nil {
			return outcome{err: "request failed"}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		o := outcome{status: resp.StatusCode, header: resp.Header.Clone(), body: string(b), trailer: resp.Trailer}
		if err != nil {
			o.err = "body cut short"
		}
		o.header.Del("Date")
		return o
	}
	paths := make([]string, 0, len(responses))
	for p := range responses {
		paths = append(paths, p)
	}
	for _, path := range paths {
		for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
			t.Run(method+path, func(t *testing.T) {
				fast := get(t, fronts["fast"].url, method, path)
				slow := get(t, fronts["net-http"].url, method, path)
				assert.Equal(t, slow.status, fast.status)
				assert.Equal(t, slow.body, fast.body)
				assert.Equal(t, slow.err, fast.err)
				assert.Equal(t, slow.trailer, fast.trailer)
				for _, h := range []http.Header{fast.header, slow.header} {
					// Framing may differ (net/http re-chunks what it does not
					// know the length of); content may not.
					h.Del("Transfer-Encoding")
					if method != http.MethodHead && slow.status != http.StatusBadGateway {
						h.Del("Content-Length")
					}
				}
				assert.Equal(t, slow.header, fast.header)
			})
		}
	}
	assert.Zero(t, fronts["fast"].fallbacks.Load(), "every case stayed on the fast path")
}

// A POST with a length stays on the fast path; a pipelined request it
// cannot carry (a chunked body) goes to net/http right after one it did
// carry, on the same connection.
func TestFrontHandsOffMidConnection(t *testing.T) {
	inst := newScriptedInstance(t, nil)
	ft := newFrontUnderTest(t, inst.URL(), pairing.FrontOptions{}, nil)
	post := "POST /api/x HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nContent-Length: 5\r\n\r\nhello"
	chunked := "POST /api/y HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	resps := rawExchange(t, ft.url, liveAsset+post+liveAsset+chunked+liveAsset, "GET", "POST", "GET", "POST", "GET")
	for _, r := range resps {
		assert.Equal(t, http.StatusOK, r.StatusCode)
		assert.Equal(t, "ok", body(t, r))
	}
	assert.EqualValues(t, 2, ft.fallbacks.Load(), "the chunked POST and what followed it on that connection")
	assert.EqualValues(t, 1, ft.handoffs(pairing.HandoffRequest))
	inst.mu.Lock()
	defer inst.mu.Unlock()
	assert.Equal(t, []string{"", "hello", "", "abc", ""}, inst.body, "each body reached the instance whole")
}

// A pooled connection the instance closed meanwhile is replaced without the
// browser noticing; an instance that is down gets the Handler's 502 and the
// browser's connection stays usable.
func TestFrontUpstreamFailures(t *testing.T) {
	inst := newScriptedInstance(t, map[string]string{
		"/once": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	})
	ft := newFrontUnderTest(t, inst.URL(), pairing.FrontOptions{}, nil)
	resps := rawExchange(t, ft.url, liveAsset, "GET")
	require.Equal(t, http.StatusOK, resps[0].StatusCode)
	inst.mu.Lock()
	for _, c := range inst.open {
		c.Close() // the instance restarts: pooled connections die
	}
	inst.mu.Unlock()
	resps = rawExchange(t, ft.url, liveAsset, "GET")
	require.Equal(t, http.StatusOK, resps[0].StatusCode, "retried on a fresh connection")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := "http://" + ln.Addr().String()
	ln.Close()
	ft = newFrontUnderTest(t, down, pairing.FrontOptions{}, nil)
	resps = rawExchange(t, ft.url, liveAsset+liveAsset, "GET", "GET")
	for _, r := range resps {
		assert.Equal(t, http.StatusBadGateway, r.StatusCode)
		assert.Equal(t, "your t3 instance is not answering; try again in a moment\n", body(t, r))
	}
	assert.Zero(t, ft.fallbacks.Load())
}

// A browser that leaves an event stream frees the instance's connection
// even while the stream has nothing to send; Shutdown waits for requests in
// flight and closes idle connections.
func TestFrontStreamsAndShutdown(t *testing.T) {
	hungUp := make(chan struct{})
	up := newScriptedStream(t, hungUp)
	h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: up}}, nil,
		pairing.HandlerOptions{Prober: cookieProber{}})
	f := pairing.NewFront(h, pairing.FrontOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- f.Serve(ln) }()

	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	_, err = io.WriteString(c, strings.Replace(liveAsset, "/assets/app.js?v=1", "/events", 1))
	require.NoError(t, err)
	buf := make([]byte, 512)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	// The head is flushed on its own, before the first event: read on
	// until the event has come.
	var got []byte
	for !strings.Contains(string(got), "data: one") {
		n, err := c.Read(buf)
		require.NoError(t, err, "read so far: %q", got)
		got = append(got, buf[:n]...)
	}
	c.Close()
	select {
	case <-hungUp:
	case <-time.After(5 * time.Second):
		t.Fatal("the instance's side of a stream stayed open after the browser left")
	}

	idle, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, f.Shutdown(ctx))
	require.ErrorIs(t, <-served, http.ErrServerClosed)
	require.NoError(t, idle.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = idle.Read(buf)
	require.True(t, errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset"), "idle connection closed: %v", err)
}

// newScriptedStream serves one event and then holds the stream open,
// closing hungUp once the other side goes away.
func newScriptedStream(t *testing.T, hungUp chan struct{}) string {
	t.Helper()
	var once sync.Once
	return rawInstance(t, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 4096)
		c.Read(buf) // the request
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"b\r\ndata: one\n\n\r\n")
		c.Read(buf) // returns when the dispatch closes its side
		once.Do(func() { close(hungUp) })
	})
}

// A response without a length ends where the instance's connection ends.
// When that end is a reset (the instance crashed, or aborted the
// response), the body is cut short, and the browser must be able to tell:
// net/http's path re-chunks such a body and leaves the last chunk out; the
// fast path relays it as it came, so it resets the browser's connection.
// A clean close there would pass a truncated asset off as complete (and it
// may be cached as such).
func TestUntilCloseBodyCutByAResetIsNotPassedOffAsComplete(t *testing.T) {
	const size = 64 << 10 // more than the relay's 16 KiB buffer: part of it is sent before the reset
	reset := make(chan struct{}, 4)
	up := rawInstance(t, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/javascript\r\n\r\n"+strings.Repeat("x", size))
		<-reset
		c.(*net.TCPConn).SetLinger(0) // Close now sends a reset
	})
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: up}}, nil,
				pairing.HandlerOptions{Prober: cookieProber{}})
			url := startFront(t, h, pairing.FrontOptions{DisableFast: m.disableFast})
			c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
			_, err = io.WriteString(c, liveAsset)
			require.NoError(t, err)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			// The first bytes of the body have arrived: the instance
			// has sent all of it; now it resets.
			_, err = br.Peek(1)
			require.NoError(t, err)
			reset <- struct{}{}
			got, err := io.ReadAll(resp.Body)
			assert.Error(t, err, "a body cut by the instance's reset read as complete (%d of %d bytes, framing %v)",
				len(got), size, resp.TransferEncoding)
		})
	}
}

// A request the browser sends while its previous one is still with the
// instance (HTTP/1.1 pipelining) is answered right after that one. It is
// the case that rules out skipping the read that finds nothing yet (see
// docs/performance.md): the second request is in the socket, unread, when
// the first answer goes out.
func TestFrontAnswersARequestSentWhileTheLastWasWithTheInstance(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	seen, release := make(chan struct{}, 1), make(chan struct{})
	accepted := make(chan net.Conn, 1)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-accepted:
			c.Close() // the dispatch's pooled connection would stay open
		default:
		}
		wg.Wait()
	})
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/held" {
				seen <- struct{}{}
				<-release
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	ft := newFrontUnderTest(t, "http://"+ln.Addr().String(), pairing.FrontOptions{}, nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(ft.url, "http://"))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(c, strings.Replace(liveAsset, "/assets/app.js", "/held", 1))
	require.NoError(t, err)
	select {
	case <-seen:
	case <-time.After(5 * time.Second):
		t.Fatal("the first request never reached the instance")
	}
	_, err = io.WriteString(c, liveAsset)
	require.NoError(t, err)
	close(release)
	br := bufio.NewReader(c)
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err, "answer %d", i+1)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "ok", body(t, resp))
	}
}

// A pooled connection the instance half-closed (its FIN sent, the socket
// left open, nothing more read) is found closed when the next request goes
// out on it, and that request goes again on a fresh connection. Waiting
// for an answer there without a read first would wait for good: the FIN
// came before the request did.
func TestFrontRetriesAPooledConnectionTheInstanceHalfClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu   sync.Mutex
		open []net.Conn
		wg   sync.WaitGroup
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	halfClosed := make(chan struct{})
	wg.Go(func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			first := n == 0
			wg.Go(func() {
				br := bufio.NewReader(c)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
						return
					}
					if first {
						c.(*net.TCPConn).CloseWrite() // and reads nothing more
						close(halfClosed)
						return
					}
				}
			})
		}
	})
	ft := newFrontUnderTest(t, "http://"+ln.Addr().String(), pairing.FrontOptions{}, nil)
	resps := rawExchange(t, ft.url, liveAsset, "GET")
	require.Equal(t, http.StatusOK, resps[0].StatusCode)
	<-halfClosed
	c, err := net.Dial("tcp", strings.TrimPrefix(ft.url, "http://"))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(c, liveAsset)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err, "answered on a fresh connection")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", body(t, resp))
}
