package pairing_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
)

// heldPairer pairs once released (at once when release is nil), and says
// on started, if any, when its first pairing has begun.
type heldPairer struct {
	started, release chan struct{}
	once             *sync.Once
}

func (p heldPairer) Pair(ctx context.Context, in t3fleet.Instance) (*pairing.Session, error) {
	if p.started != nil {
		p.once.Do(func() { close(p.started) })
	}
	if p.release == nil {
		return freshSession(), nil
	}
	select {
	case <-p.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return freshSession(), nil
}

func freshSession() *pairing.Session {
	return &pairing.Session{Cookies: []*http.Cookie{{Name: "t3_session", Value: "fresh", Path: "/"}}, Endpoint: pairing.EndpointBrowserSession}
}

// Shutdown lets a request in flight (here a pairing) finish, on both paths,
// as its doc and net/http's server promise: the pairing is released only
// once the shutdown has begun.
func TestShutdownFinishesAPairingInFlight(t *testing.T) {
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			p := heldPairer{started: make(chan struct{}), release: make(chan struct{}), once: new(sync.Once)}
			h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: "http://127.0.0.1:1"}},
				p, pairing.HandlerOptions{Prober: cookieProber{}})
			f, ln, c := frontConn(t, h, m.disableFast)
			io.WriteString(c, "GET /x HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nSec-Fetch-Dest: document\r\n\r\n")
			<-p.started
			done := shutdownAsync(f)
			waitShutdownBegun(t, ln)
			close(p.release)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err, "the pairing in flight got no answer")
			assert.Equal(t, http.StatusFound, resp.StatusCode)
			require.NoError(t, <-done)
		})
	}
}

// frontConn serves h through a Front the test shuts down itself, and
// dials it (a 5 s deadline on the connection).
func frontConn(t *testing.T, h *pairing.Handler, disableFast bool) (*pairing.Front, net.Listener, net.Conn) {
	t.Helper()
	f, ln := serveFront(t, h, pairing.FrontOptions{DisableFast: disableFast})
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	return f, ln, c
}

// waitShutdownBegun waits until the Front serving ln has stopped accepting.
func waitShutdownBegun(t *testing.T, ln net.Listener) {
	t.Helper()
	require.Eventually(t, func() bool {
		nc, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err == nil {
			nc.Close()
		}
		return err != nil
	}, 5*time.Second, 5*time.Millisecond, "shutdown has begun")
}

// shutdownAsync runs f.Shutdown, bounded at 3 s, and gives its error.
func shutdownAsync(f *pairing.Front) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		done <- f.Shutdown(ctx)
	}()
	return done
}

// wedgedInstance accepts, reads and never answers; got says when a
// request head has arrived, closed counts the connections the proxy closed
// on it.
func wedgedInstance(t *testing.T) (string, <-chan struct{}, *atomic.Int64) {
	var closed atomic.Int64
	got := make(chan struct{}, 16)
	url := rawInstance(t, func(c net.Conn) {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err == nil {
			got <- struct{}{}
		}
		io.Copy(io.Discard, br)
		closed.Add(1)
	})
	return url, got, &closed
}

// A browser that gives up on a wedged instance releases the instance
// connection (and the goroutine and the browser's socket with it): each
// retry would otherwise hold another set until the instance answers.
func TestClientHangupReleasesAWedgedInstance(t *testing.T) {
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			url, got, closed := wedgedInstance(t)
			ft := newFrontUnderTest(t, url, pairing.FrontOptions{DisableFast: m.disableFast}, nil)
			c, err := net.Dial("tcp", strings.TrimPrefix(ft.url, "http://"))
			require.NoError(t, err)
			io.WriteString(c, liveAsset)
			<-got // the request is with the instance
			c.Close()
			require.Eventually(t, func() bool { return closed.Load() == 1 }, 5*time.Second, 20*time.Millisecond,
				"instance connection still open after the browser hung up")
		})
	}
}

// An event stream whose browser hangs up long after the connection's idle
// deadline has passed is still noticed.
func TestStreamHangupNoticedAfterTheIdleDeadline(t *testing.T) {
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			var closed atomic.Int64
			url := rawInstance(t, func(c net.Conn) {
				defer c.Close()
				http.ReadRequest(bufio.NewReader(c))
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ndata:1\r\n")
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				io.Copy(io.Discard, c)
				closed.Add(1)
			})
			ft := newFrontUnderTest(t, url, pairing.FrontOptions{DisableFast: m.disableFast,
				IdleTimeout: 300 * time.Millisecond}, nil)
			c, err := net.Dial("tcp", strings.TrimPrefix(ft.url, "http://"))
			require.NoError(t, err)
			io.WriteString(c, strings.Replace(liveAsset, "/assets/app.js?v=1", "/events", 1))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			require.Equal(t, 200, resp.StatusCode)
			line, err := br.ReadString('\n') // the first event's chunk size: the stream is flowing
			require.NoError(t, err)
			require.Equal(t, "6\r\n", line)
			time.Sleep(700 * time.Millisecond) // past the idle deadline on purpose
			c.Close()
			require.Eventually(t, func() bool { return closed.Load() == 1 }, 5*time.Second, 20*time.Millisecond,
				"stream to the instance still open after the browser hung up")
		})
	}
}

// An upload is not bound by the header or idle deadline of its connection:
// a slow one (here 10 bytes over a second, the head in two pieces so its
// header deadline was set) goes through on both paths, as net/http puts no
// deadline on a body.
func TestSlowUploadIsNotCutByTheHeaderDeadline(t *testing.T) {
	inst := newScriptedInstance(t, nil)
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			ft := newFrontUnderTest(t, inst.URL(), pairing.FrontOptions{DisableFast: m.disableFast,
				ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute}, nil)
			c, err := net.Dial("tcp", strings.TrimPrefix(ft.url, "http://"))
			require.NoError(t, err)
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			head := "POST /api/upload HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nContent-Length: 10\r\n\r\n"
			io.WriteString(c, head[:20])
			time.Sleep(50 * time.Millisecond) // the head in two reads
			io.WriteString(c, head[20:])
			for range 10 {
				time.Sleep(100 * time.Millisecond) // a slow sender, on purpose
				io.WriteString(c, "x")
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err, "connection closed with no answer")
			assert.Equal(t, http.StatusOK, resp.StatusCode)
		})
	}
}

// A response finished while the Front shuts down says Connection: close,
// as net/http's server says it: a proxy in front (Traefik) must not put
// the connection back in its pool and send the next request into a close.
func TestShutdownSaysConnectionClose(t *testing.T) {
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			got := make(chan struct{}, 1)
			release := make(chan struct{})
			inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- struct{}{}
				<-release
				io.WriteString(w, "ok")
			}))
			t.Cleanup(inst.Close)
			minter := &fakeMinter{instances: map[string]*fakeInstance{}}
			h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: inst.URL}},
				pairing.NewPairer(minter, pairing.PairerOptions{}), pairing.HandlerOptions{Prober: cookieProber{}})
			f, ln, c := frontConn(t, h, m.disableFast)
			io.WriteString(c, liveAsset)
			<-got
			done := shutdownAsync(f)
			waitShutdownBegun(t, ln)
			close(release)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.True(t, resp.Close, "Connection: close during shutdown (got %q)", resp.Header.Get("Connection"))
			require.NoError(t, <-done)
		})
	}
}

// An event stream's head reaches the browser before its first event, on
// both paths (the browser opens the stream on it).
func TestStreamHeadIsSentBeforeTheFirstEvent(t *testing.T) {
	release := make(chan struct{})
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-release // no event yet
	}))
	t.Cleanup(inst.Close)
	t.Cleanup(func() { close(release) }) // before inst.Close, which waits for the handlers
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			ft := newFrontUnderTest(t, inst.URL, pairing.FrontOptions{DisableFast: m.disableFast}, nil)
			c, err := net.Dial("tcp", strings.TrimPrefix(ft.url, "http://"))
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.SetDeadline(time.Now().Add(3*time.Second)))
			io.WriteString(c, strings.Replace(liveAsset, "/assets/app.js?v=1", "/events", 1))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err, "the head never came")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		})
	}
}

// A connection that sends nothing at all gets ReadHeaderTimeout to start
// its first head, as on net/http's server (which sets the header deadline
// at accept): IdleTimeout is the wait between two requests of a kept-alive
// connection; the fast path's would otherwise hold a silent new
// connection, and its two 16 KiB buffers, for two minutes by default.
func TestSilentNewConnectionGetsReadHeaderTimeout(t *testing.T) {
	inst := newScriptedInstance(t, nil)
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			c := dialTimeoutFront(t, inst, m.disableFast)
			start := time.Now()
			require.NoError(t, c.SetReadDeadline(start.Add(3*time.Second)))
			_, err := c.Read(make([]byte, 1))
			assert.False(t, errors.Is(err, os.ErrDeadlineExceeded),
				"a connection that sent nothing was still open after %s (ReadHeaderTimeout 300ms)", time.Since(start).Round(time.Millisecond))
			assert.ErrorIs(t, err, io.EOF)
			assert.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond,
				"closed before ReadHeaderTimeout (300ms): for another reason")
		})
	}
}

// Between two requests of a kept-alive connection the wait is IdleTimeout,
// the first request's ReadHeaderTimeout included: a connection idle longer
// than ReadHeaderTimeout after its first answer still carries a second.
func TestKeptAliveConnectionWaitsIdleTimeoutAfterItsFirstRequest(t *testing.T) {
	inst := newScriptedInstance(t, nil)
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			c := dialTimeoutFront(t, inst, m.disableFast)
			require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
			br := bufio.NewReader(c)
			for i := range 2 {
				if i == 1 {
					time.Sleep(700 * time.Millisecond) // the input under test: idle past ReadHeaderTimeout
				}
				_, err := io.WriteString(c, liveAsset)
				require.NoError(t, err)
				resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
				require.NoError(t, err, "request %d", i+1)
				_, err = io.Copy(io.Discard, resp.Body)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, resp.StatusCode)
			}
		})
	}
}

// dialTimeoutFront opens a connection to a Front in front of inst whose
// ReadHeaderTimeout (300 ms) and IdleTimeout (a minute) are far apart.
func dialTimeoutFront(t *testing.T, inst *scriptedInstance, disableFast bool) net.Conn {
	t.Helper()
	h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: inst.URL()}}, nil,
		pairing.HandlerOptions{Prober: cookieProber{}})
	url := startFront(t, h, pairing.FrontOptions{DisableFast: disableFast,
		ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute})
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}
