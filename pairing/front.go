package pairing

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for FrontOptions.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
)

// FrontOptions configure a Front. The zero value works.
type FrontOptions struct {
	// Fallback serves every request the fast path does not carry; nil means
	// the Handler. Give it the mux that also serves /healthz and /metrics,
	// and list those paths in Reserved.
	Fallback http.Handler
	// Reserved paths always go to Fallback: an exact path, or a prefix when
	// it ends in "/".
	Reserved []string
	// ReadHeaderTimeout and IdleTimeout apply to both paths; zero means the
	// defaults above.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// DisableFast hands every connection to net/http: the Handler alone,
	// for comparison or as an escape hatch.
	DisableFast bool
	// PlainIO reads and writes the browsers' connections through net.Conn.
	// By default the fast path uses system calls the Go scheduler does not
	// see, on Linux, which keeps the runtime's sysmon thread from waking
	// each time the process comes back from idle (docs/performance.md).
	// For comparison or as an escape hatch; UpstreamTransport has the same.
	PlainIO bool
}

// Front serves a Handler on a listener. It carries the steady state itself,
// one goroutine per connection, allocating per request little more than one
// copy of each head (the request the Handler's decision reads is built
// over the connection's last one): a GET or
// HEAD without a body, or a POST, PUT, PATCH or DELETE with a
// Content-Length (sent on a fresh instance connection, since it may not be
// sent twice), from a trusted
// proxy, for a known user, that the Handler would proxy (a live cookie on a
// page load, or no page load). The request head is checked
// strictly, forwarded as it came (identity header removed, X-Forwarded-*
// set, as the Handler's own forwarding does) over the UpstreamTransport's
// pooled connections, and the response relayed with its own framing.
//
// Pairings and refusals of such requests are written by the Handler into a
// buffer and sent from the fast path too. Anything else (WebSockets,
// chunked bodies, Expect, hop-by-hop fields, unusual heads, targets or base URLs, reserved
// paths) is handed, with the bytes already read, to a net/http server
// running Fallback, which keeps that connection from then on. net/http's server costs a background read, a context and several
// allocations per request; on a two-core machine that is about a third of
// the proxy's throughput.
//
// The fast path needs the Handler's Transport to be an *UpstreamTransport
// (the default); with any other it stays off. Build one with NewFront: the
// zero value is not usable.
type Front struct {
	h     *Handler
	up    *UpstreamTransport
	opts  FrontOptions
	srv   *http.Server
	ctx   context.Context
	stop  context.CancelFunc
	hand  *handoffListener
	close sync.Once

	mu     sync.Mutex
	ln     net.Listener
	conns  map[*fastConn]struct{}
	closed atomic.Bool
	wg     sync.WaitGroup
}

// NewFront returns a Front over h.
func NewFront(h *Handler, opts FrontOptions) *Front {
	if opts.Fallback == nil {
		opts.Fallback = h
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	f := &Front{h: h, opts: opts, conns: map[*fastConn]struct{}{}}
	if up, ok := h.transport.(*UpstreamTransport); ok && !opts.DisableFast {
		up.init()
		f.up = up
	}
	f.ctx, f.stop = context.WithCancel(context.Background())
	f.srv = &http.Server{Handler: opts.Fallback, ReadHeaderTimeout: opts.ReadHeaderTimeout, IdleTimeout: opts.IdleTimeout}
	if h.identity.owners != nil {
		f.srv.ConnContext = h.ConnContext // the owner check, once per connection
	}
	return f
}

// Serve accepts connections on ln until Shutdown or Close; it returns
// http.ErrServerClosed then, or the listener's error.
func (f *Front) Serve(ln net.Listener) error {
	f.mu.Lock()
	if f.ln != nil || f.closed.Load() {
		f.mu.Unlock()
		return errors.New("pairing: Front.Serve called twice or after Shutdown")
	}
	f.ln = ln
	f.hand = newHandoffListener(ln.Addr())
	f.mu.Unlock()
	srvErr := make(chan error, 1)
	go func() { srvErr <- f.srv.Serve(f.hand) }()
	go f.janitor()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if f.closed.Load() {
				<-srvErr
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay) // as net/http: back off on EMFILE and the like
				continue
			}
			f.Close()
			<-srvErr
			return err
		}
		delay = 0
		if f.up == nil {
			f.h.metrics.handoffs.WithLabelValues(HandoffFastPathOff).Inc()
			f.hand.give(nc)
			continue
		}
		fc := f.track(nc)
		if fc == nil {
			nc.Close()
			continue
		}
		f.wg.Go(fc.serve)
	}
}

// Shutdown stops accepting, closes idle connections and waits for the
// requests in flight (on both paths) until ctx ends, then closes the rest.
func (f *Front) Shutdown(ctx context.Context) error {
	// Keep-alives end before the listener closes, so that every response
	// written once shutdown is visible says Connection: close (net/http's
	// own Shutdown, started below, would say so only once it runs).
	f.srv.SetKeepAlivesEnabled(false)
	f.beginClose()
	// Both servers wait together: net/http's for its handlers, the fast
	// path's for its own requests (whose pairings and probes run under
	// f.ctx, cancelled only when the wait is over).
	srvErr := make(chan error, 1)
	go func() { srvErr <- f.srv.Shutdown(ctx) }()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	defer f.stop()
	for {
		f.closeIdle()
		select {
		case <-done:
			return <-srvErr
		case <-ctx.Done():
			f.stop()
			f.closeAll()
			<-done
			return errors.Join(<-srvErr, ctx.Err())
		case <-ticker.C:
		}
	}
}

// Close closes the listener and every connection at once.
func (f *Front) Close() error {
	f.beginClose()
	f.stop()
	err := f.srv.Close()
	f.closeAll()
	f.wg.Wait()
	return err
}

func (f *Front) beginClose() {
	f.close.Do(func() {
		f.mu.Lock()
		f.closed.Store(true)
		ln, hand := f.ln, f.hand
		f.mu.Unlock()
		if ln != nil {
			ln.Close()
		}
		if hand != nil {
			hand.Close()
		}
	})
}

func (f *Front) track(nc net.Conn) *fastConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed.Load() {
		return nil
	}
	fc := &fastConn{f: f, nc: nc}
	f.conns[fc] = struct{}{}
	return fc
}

func (f *Front) untrack(fc *fastConn) {
	f.mu.Lock()
	delete(f.conns, fc)
	f.mu.Unlock()
}

func (f *Front) closeIdle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		if fc.idle.Load() {
			fc.nc.Close()
		}
	}
}

func (f *Front) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		fc.nc.Close()
		if c := fc.upc.Load(); c != nil {
			c.nc.Close() // a stream waiting for its next event
		}
	}
}

// reserved reports whether path belongs to Fallback alone.
func (f *Front) reserved(path string) bool {
	for _, r := range f.opts.Reserved {
		if path == r || strings.HasSuffix(r, "/") && strings.HasPrefix(path, r) {
			return true
		}
	}
	return false
}

// fastConn is one client connection on the fast path.
type fastConn struct {
	f      *Front
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	peerIP string
	peer   *connPeer                    // the owner check's verdict; nil when it is off
	idle   atomic.Bool                  // waiting for the next request
	upc    atomic.Pointer[upstreamConn] // the instance connection in use
	// waiting: a request is with the instance (sent, its response not yet
	// all relayed); seq counts requests, so the janitor can tell a long
	// wait from two short ones.
	waiting atomic.Bool
	seq     atomic.Uint64
	// idleSince is when the idle deadline was last set; zero: not set.
	idleSince time.Time
	scratch   []byte  // the status line being relayed
	lines     []byte  // the field lines being read
	fieldBuf  []field // the fields being read
	reqFields []field // the request's fields
	req       reqScratch
}

// serve carries requests until one needs net/http, which then gets the
// connection, or until the connection ends.
func (fc *fastConn) serve() {
	f := fc.f
	handed := false
	defer func() {
		f.untrack(fc)
		if !handed {
			fc.nc.Close()
		}
	}()
	remote := fc.nc.RemoteAddr().String()
	if !f.h.identity.trustedPeer(remote) {
		handed = f.handOff(fc, HandoffUntrustedPeer) // net/http refuses it as the Handler does
		return
	}
	if oc := f.h.identity.owners; oc != nil {
		// Decided once for the connection, here, and handed on with it.
		fc.peer = newConnPeer(fc.nc.LocalAddr(), fc.nc.RemoteAddr())
		if !fc.peer.allowed(oc) {
			handed = f.handOff(fc, HandoffUntrustedPeer)
			return
		}
	}
	fc.peerIP = peerIP(fc.nc.RemoteAddr())
	rw := socketIO(fc.nc, f.opts.PlainIO)
	fc.br = bufio.NewReaderSize(rw, 16<<10)
	fc.bw = bufio.NewWriterSize(rw, 16<<10)
	// A new connection's first head must come within ReadHeaderTimeout, as
	// net/http has it; only a kept-alive one waits IdleTimeout for the next.
	fc.nc.SetReadDeadline(time.Now().Add(f.opts.ReadHeaderTimeout))
	for first := true; ; first = false {
		fc.idle.Store(true)
		if f.closed.Load() {
			return
		}
		if fc.br.Buffered() == 0 {
			// Setting a deadline costs a timer update: the idle one is moved
			// at most once a second (its precision).
			if now := time.Now(); !first && now.Sub(fc.idleSince) > time.Second {
				fc.nc.SetReadDeadline(now.Add(f.opts.IdleTimeout))
				fc.idleSince = now
			}
			if _, err := fc.br.Peek(1); err != nil {
				return
			}
		}
		fc.idle.Store(false)
		raw := bufferedHead(fc.br)
		if raw == nil {
			// The rest of the head must come within ReadHeaderTimeout.
			fc.nc.SetReadDeadline(time.Now().Add(f.opts.ReadHeaderTimeout))
			fc.idleSince = time.Time{}
			var err error
			raw, err = peekHead(fc.br)
			if errors.Is(err, errHeadTooLarge) {
				handed = f.handOff(fc, HandoffRequest)
				return
			}
			if err != nil {
				return
			}
		}
		hd, ok := parseFastHead(raw, f.h.identity, fc.reqFields)
		fc.reqFields = hd.fields
		if !ok {
			handed = f.handOff(fc, HandoffRequest)
			return
		}
		if f.reserved(hd.path) {
			handed = f.handOff(fc, HandoffReserved)
			return
		}
		r := hd.request(&fc.req, remote)
		// The peer was checked once for the connection and the header's
		// spelling and count by parseFastHead: what is left of
		// IdentityResolver.User is the name itself.
		user, err := f.h.identity.name(hd.user)
		p := f.h.plan(f.ctx, r, user, err)
		if p.kind != planProxy && hd.length >= 0 {
			// A refused request with a body: net/http knows how much of an
			// unwanted body to read before it closes.
			handed = f.handOff(fc, HandoffRequest)
			return
		}
		if p.kind != planProxy {
			// Pairings and refusals are small answers the Handler writes:
			// they are buffered and sent from here, and the connection
			// stays on this path.
			fc.br.Discard(len(raw))
			// The Handler's answer may hand the request to work that
			// outlives it (a pairing others wait for): it gets a copy of
			// its own, not the connection's scratch.
			if !fc.answer(r.Clone(f.ctx), p) {
				return
			}
			continue
		}
		if p.target.Scheme != "http" || p.target.Path != "" || p.target.RawQuery != "" {
			handed = f.handOff(fc, HandoffTarget)
			return
		}
		fc.br.Discard(len(raw))
		if p.page {
			f.h.metrics.proxiedPage.Inc()
		} else {
			f.h.metrics.proxiedOther.Inc()
		}
		if !fc.fastForward(&hd, p) {
			return
		}
	}
}

// handOff gives the connection, with whatever its reader holds, to the
// net/http server; it reports whether the server took it.
func (f *Front) handOff(fc *fastConn, reason string) bool {
	f.h.metrics.handoffs.WithLabelValues(reason).Inc()
	fc.nc.SetReadDeadline(time.Time{})
	c := net.Conn(fc.nc)
	if fc.br != nil && fc.br.Buffered() > 0 {
		c = &handedConn{Conn: fc.nc, br: fc.br, peer: fc.peer}
	} else if fc.peer != nil {
		c = &handedConn{Conn: fc.nc, peer: fc.peer}
	}
	return f.hand.give(c)
}

// handedConn replays what the fast path read before the rest of the
// connection, and carries the owner check's verdict to net/http's
// ConnContext, so it is not taken twice.
type handedConn struct {
	net.Conn
	br   *bufio.Reader
	peer *connPeer
}

func (c *handedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p) // only what is buffered: no read of its own
		}
		c.br = nil // drained: its 16 KiB can go (net/http reads from one goroutine at a time)
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close the connection as it does a TCP one.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// handoffListener is how connections reach the net/http server.
type handoffListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closer sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// give passes c to the server, or closes it once the listener is closed.
func (l *handoffListener) give(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		c.Close()
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.closer.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
