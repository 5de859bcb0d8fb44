package pairing

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"
)

// UpstreamTransport carries plain HTTP/1.1 requests to the instances in the
// caller's goroutine: a pool of keep-alive connections per host, the request
// written and the response read by the goroutine that asked, the connection
// back in the pool when its body is read to the end.
//
// net/http's Transport hands every request to a write goroutine and every
// response from a read goroutine over channels; on a small machine those
// handoffs (and their futex wake-ups) cost as much as the proxying itself.
//
// What this path does not carry goes to Fallback unchanged: upgrades
// (WebSocket), HTTPS, requests with a body and methods other than GET, HEAD,
// OPTIONS and TRACE (only a request that may be sent again goes over a pooled
// connection that may turn out to be dead), Expect: 100-continue,
// Connection: close and anything else unusual.
type UpstreamTransport struct {
	// Fallback carries what the synchronous path does not; nil means
	// NewTransport().
	Fallback http.RoundTripper
	// DialContext opens connections; nil means a net.Dialer with
	// DefaultDialTimeout.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxIdleConnsPerHost: zero means DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int
	// IdleConnTimeout: zero means DefaultIdleConnTimeout.
	IdleConnTimeout time.Duration
	// PlainIO reads and writes the instances' connections through
	// net.Conn instead of with system calls the Go scheduler does not see
	// (Linux only; FrontOptions.PlainIO has the why).
	PlainIO bool

	once sync.Once
	mu   sync.Mutex
	idle map[string][]*upstreamConn // host:port -> idle conns, most recent last
	// sweep closes idle conns past IdleConnTimeout; armed while any are
	// pooled (get only ever looks at the newest of a host).
	sweep *time.Timer
}

// NewUpstreamTransport returns an UpstreamTransport falling back to
// NewTransport() for what it does not carry.
func NewUpstreamTransport() *UpstreamTransport {
	return &UpstreamTransport{}
}

var _ http.RoundTripper = (*UpstreamTransport)(nil)

// errDeadConn marks a pooled connection found closed before any byte of the
// response arrived: a replayable request may go again on a fresh one.
var errDeadConn = errors.New("pooled upstream connection closed before the response")

type upstreamConn struct {
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	host      string
	idleSince time.Time
}

func (t *UpstreamTransport) init() {
	t.once.Do(func() {
		if t.Fallback == nil {
			t.Fallback = NewTransport()
		}
		if t.DialContext == nil {
			d := &net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}
			t.DialContext = d.DialContext
		}
		if t.MaxIdleConnsPerHost <= 0 {
			t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
		}
		if t.IdleConnTimeout <= 0 {
			t.IdleConnTimeout = DefaultIdleConnTimeout
		}
		t.idle = map[string][]*upstreamConn{}
	})
}

// RoundTrip implements http.RoundTripper.
func (t *UpstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.init()
	if !synchronous(req) {
		return t.Fallback.RoundTrip(req)
	}
	host := hostPort(req.URL)
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		c, reused, err := t.acquire(ctx, host, attempt)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := t.exchange(ctx, c, req, reused)
		if err == nil {
			return resp, nil
		}
		if errors.Is(err, errDeadConn) && attempt == 0 {
			continue // once, on a fresh conn
		}
		closeBody(req)
		return nil, err
	}
}

// synchronous reports whether req takes the synchronous path.
func synchronous(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host == "" || req.Close {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default: // not replayable: a conn that died while pooled would lose it
		return false
	}
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	if len(req.Trailer) > 0 || len(req.TransferEncoding) > 0 {
		return false
	}
	for k, vv := range req.Header {
		switch k {
		case "Upgrade", "Connection", "Expect", "Te", "Transfer-Encoding", "Content-Length", "Host":
			return false
		}
		if !safeField(k) {
			return false
		}
		for _, v := range vv {
			if !safeField(v) {
				return false
			}
		}
	}
	return safeField(req.Host) && safeField(req.URL.Host)
}

// safeField refuses what could split a header; the fallback then reports the
// invalid field as net/http does.
func safeField(s string) bool {
	return strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, '\n') < 0 && strings.IndexByte(s, 0) < 0
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return u.Host + ":80"
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func (t *UpstreamTransport) dial(ctx context.Context, host string) (*upstreamConn, error) {
	nc, err := t.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", host, err)
	}
	rw := socketIO(nc, t.PlainIO)
	return &upstreamConn{nc: nc, host: host, br: bufio.NewReaderSize(rw, 16<<10), bw: bufio.NewWriterSize(rw, 4<<10)}, nil
}

// acquire returns a pooled connection to host on a first attempt (reused
// true) or a fresh one, dialled under ctx.
func (t *UpstreamTransport) acquire(ctx context.Context, host string, attempt int) (*upstreamConn, bool, error) {
	if attempt == 0 {
		if c, ok := t.get(host); ok {
			return c, true, nil
		}
	}
	c, err := t.dial(ctx, host)
	return c, false, err
}

// get takes the most recently used idle conn for host, closing the ones
// idle for too long.
func (t *UpstreamTransport) get(host string) (*upstreamConn, bool) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	conns := t.idle[host]
	for len(conns) > 0 {
		c := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		conns = conns[:len(conns)-1]
		if now.Sub(c.idleSince) > t.IdleConnTimeout {
			c.nc.Close()
			continue
		}
		t.idle[host] = conns
		return c, true
	}
	t.idle[host] = conns
	return nil, false
}

// put pools c, or closes it when the pool for its host is full.
func (t *UpstreamTransport) put(c *upstreamConn) {
	if c.br.Buffered() > 0 { // bytes nobody asked for: the stream is out of step
		c.nc.Close()
		return
	}
	c.idleSince = time.Now()
	t.mu.Lock()
	conns := t.idle[c.host]
	if len(conns) >= t.MaxIdleConnsPerHost {
		old := conns[0]
		copy(conns, conns[1:])
		conns[len(conns)-1] = c
		t.mu.Unlock()
		old.nc.Close()
		return
	}
	t.idle[c.host] = append(conns, c)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.IdleConnTimeout, t.sweepIdle)
	}
	t.mu.Unlock()
}

// sweepIdle closes the pooled conns idle for longer than IdleConnTimeout
// (the oldest of each host's, at its front) and comes back while any are
// left.
func (t *UpstreamTransport) sweepIdle() {
	now := time.Now()
	var expired []*upstreamConn
	t.mu.Lock()
	left := 0
	for host, conns := range t.idle {
		n := 0
		for n < len(conns) && now.Sub(conns[n].idleSince) > t.IdleConnTimeout {
			n++
		}
		if n > 0 {
			expired = append(expired, conns[:n]...)
			rest := copy(conns, conns[n:])
			clear(conns[rest:])
			conns = conns[:rest]
		}
		if len(conns) == 0 {
			delete(t.idle, host)
			continue
		}
		t.idle[host] = conns
		left += len(conns)
	}
	if left > 0 {
		t.sweep.Reset(t.IdleConnTimeout / 2)
	} else {
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, c := range expired {
		c.nc.Close()
	}
}

// CloseIdleConnections closes the pooled connections (and the fallback's).
func (t *UpstreamTransport) CloseIdleConnections() {
	t.init()
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*upstreamConn{}
	t.mu.Unlock()
	for _, conns := range idle {
		for _, c := range conns {
			c.nc.Close()
		}
	}
	if ci, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// aLongTimeAgo is a deadline that makes blocked reads and writes return.
var aLongTimeAgo = time.Unix(1, 0)

// exchange writes req on c and reads its response head. On success the
// response's body owns c (and the cancellation hook) until EOF or Close.
func (t *UpstreamTransport) exchange(ctx context.Context, c *upstreamConn, req *http.Request, reused bool) (*http.Response, error) {
	stop := func() bool { return true }
	if ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			t.put(c)
			return nil, err
		}
		stop = context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) (*http.Response, error) {
		stop()
		c.nc.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	writeRequest(c.bw, req)
	if err := c.bw.Flush(); err != nil {
		if reused && ctx.Err() == nil {
			return fail(fmt.Errorf("%w: %w", errDeadConn, err))
		}
		return fail(err)
	}
	var trace *httptrace.ClientTrace
	for {
		if reused {
			// Nothing read yet: a pooled conn the instance closed meanwhile
			// reads as EOF or reset here, and the request may go again.
			if _, err := c.br.Peek(1); err != nil {
				if ctx.Err() == nil {
					return fail(fmt.Errorf("%w: %w", errDeadConn, err))
				}
				return fail(err)
			}
			reused = false
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return fail(errors.New("101 Switching Protocols to a request that did not ask for it"))
			}
			if trace == nil {
				trace = httptrace.ContextClientTrace(ctx)
			}
			if trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
					return fail(err)
				}
			}
			continue
		}
		if resp.Body == http.NoBody {
			if stop() && !resp.Close && ctx.Err() == nil {
				t.put(c)
			} else {
				c.nc.Close()
			}
			return resp, nil
		}
		resp.Body = &upstreamBody{t: t, c: c, rc: resp.Body, stop: stop, ctx: ctx, reusable: !resp.Close}
		return resp, nil
	}
}

// writeRequest writes the request head; synchronous has vetted its fields.
func writeRequest(bw *bufio.Writer, req *http.Request) {
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	if req.Host != "" {
		bw.WriteString(req.Host)
	} else {
		bw.WriteString(req.URL.Host)
	}
	bw.WriteString("\r\n")
	// As net/http: a missing User-Agent gets Go's, an empty one none.
	if ua, ok := req.Header["User-Agent"]; !ok {
		bw.WriteString("User-Agent: Go-http-client/1.1\r\n")
	} else if len(ua) > 0 && ua[0] != "" {
		bw.WriteString("User-Agent: ")
		bw.WriteString(ua[0])
		bw.WriteString("\r\n")
	}
	for k, vv := range req.Header {
		if k == "User-Agent" {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(strings.TrimSpace(v))
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
}

// upstreamBody hands its connection back to the pool once read to the end,
// and closes it when abandoned earlier.
type upstreamBody struct {
	t        *UpstreamTransport
	c        *upstreamConn
	rc       io.ReadCloser
	stop     func() bool
	ctx      context.Context
	reusable bool

	mu   sync.Mutex
	done bool
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, errors.New("read on a closed upstream body")
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		if ctxErr := b.ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		b.finish(false)
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.finish(false) // not read to the end: the rest is not worth draining
	}
	return nil
}

// finish releases the conn: to the pool after a clean end, closed otherwise.
func (b *upstreamBody) finish(eof bool) {
	b.done = true
	if eof && b.stop() && b.reusable && b.ctx.Err() == nil {
		b.t.put(b.c) // the cancel hook never ran: no deadline to clear
		return
	}
	b.stop()
	b.c.nc.Close()
}
