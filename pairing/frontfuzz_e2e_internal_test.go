package pairing

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
)

// e2eFront is a Front on loopback over one instance, a raw listener that
// answers /1 with whatever answer holds (then closes), and /2 and /3 with
// known ones.
type e2eFront struct {
	addr string
	mu   sync.Mutex
	raw  string
}

const (
	e2eSecond = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
	e2eThird  = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthird"
)

func newE2EFront(t testing.TB) *e2eFront {
	e := &e2eFront{}
	up, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { up.Close() })
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go e.serveInstance(c)
		}
	}()
	h := NewHandler(oneRouter{t3fleet.Instance{User: "ana", OSUser: "ana", BaseURL: "http://" + up.Addr().String()}}, nil,
		HandlerOptions{Logger: slog.New(slog.DiscardHandler)})
	f := NewFront(h, FrontOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- f.Serve(ln) }()
	t.Cleanup(func() {
		f.Close()
		<-served
	})
	e.addr = ln.Addr().String()
	return e
}

func (e *e2eFront) serveInstance(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		switch req.URL.Path {
		case "/1":
			e.mu.Lock()
			raw := e.raw
			e.mu.Unlock()
			io.WriteString(c, raw)
			return // whatever it said, the connection ends here
		case "/2":
			io.WriteString(c, e2eSecond)
		default:
			io.WriteString(c, e2eThird)
		}
	}
}

// exchange sends three requests on one connection (the first method1 /1,
// then GET /2, then GET /3 asking to close, which net/http serves) and
// returns everything the browser receives until the connection closes.
func (e *e2eFront) exchange(t *testing.T, raw, method1 string) []byte {
	e.mu.Lock()
	e.raw = raw
	e.mu.Unlock()
	c, err := net.Dial("tcp", e.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	const fields = " HTTP/1.1\r\nHost: t3.example\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\nSec-Fetch-Dest: script\r\n"
	_, err = io.WriteString(c, method1+" /1"+fields+"\r\nGET /2"+fields+"\r\nGET /3"+fields+"Connection: close\r\n\r\n")
	require.NoError(t, err)
	got, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		require.NoError(t, err, "read so far: %q", got) // a reset is how a cut body ends
	}
	return got
}

// FuzzFrontEndToEnd sends an instance's answer through a running Front to a
// browser that pipelines two more requests behind it. Whatever the answer,
// the browser reads at most one response for it, strictly well-formed, and
// the next responses are exactly the instance's next answers: nothing of
// the first answer is taken for a response of its own.
func FuzzFrontEndToEnd(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add(s.raw, false)
	}
	e := newE2EFront(f)
	f.Fuzz(func(t *testing.T, raw string, head bool) {
		checkEndToEnd(t, e, raw, head)
	})
}

func checkEndToEnd(t *testing.T, e *e2eFront, raw string, head bool) {
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	got := e.exchange(t, raw, method)
	first, err := readStrictResponse(got, method)
	if err != nil {
		// Only a response cut short (its body broken midway; the
		// browser's connection closed after the head and part of it)
		// may fail to read whole.
		require.ErrorIs(t, err, errStrictShort, "%q", got)
		require.NotContains(t, strings.ToLower(string(got)), "\r\ncontent-length: 6\r\n\r\nsecond",
			"the next response is not in a cut one: %q", got)
		return
	}
	if first.untilClose {
		require.NotContains(t, string(first.body), e2eSecond, "a body until close ends the connection with it")
		return
	}
	rest := got[len(got)-first.rest:]
	second, err := readStrictResponse(rest, http.MethodGet)
	require.NoError(t, err, "the second response after %q: %q", raw, rest)
	require.Equal(t, 200, second.status)
	require.Equal(t, "second", string(second.body), "after %q", raw)
	rest = rest[len(rest)-second.rest:]
	third, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(rest))), nil)
	require.NoError(t, err, "net/http's response after %q: %q", raw, rest)
	b, err := io.ReadAll(third.Body)
	require.NoError(t, err)
	require.Equal(t, "third", string(b))
}

func TestFrontEndToEndSeeds(t *testing.T) {
	e := newE2EFront(t)
	for _, s := range responseSeeds {
		for _, head := range []bool{false, true} {
			t.Run(s.name, func(t *testing.T) { checkEndToEnd(t, e, s.raw, head) })
		}
	}
}
