package pairing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Transport tuning defaults for NewTransport.
const (
	DefaultMaxIdleConnsPerHost = 256
	DefaultIdleConnTimeout     = 90 * time.Second
	DefaultDialTimeout         = 5 * time.Second
)

// NewTransport returns the tuned transport the handler shares between
// proxying, probing and pairing: keep-alive connections pooled per instance,
// many idle ones kept, no compression negotiated (bodies pass through as the
// instance sent them), no proxy from the environment.
func NewTransport() *http.Transport {
	d := &net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          4 * DefaultMaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   DefaultMaxIdleConnsPerHost,
		IdleConnTimeout:       DefaultIdleConnTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
}

type ctxKey int

const targetKey ctxKey = 0

// proxyTarget is what the Rewrite hook needs from the routing decision.
type proxyTarget struct {
	user string
	url  *url.URL
}

// newReverseProxy is the proxy for what forward does not carry. ServeHTTP
// has removed the identity header from the inbound request already.
func newReverseProxy(t http.RoundTripper, h *Handler) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport:  t,
		BufferPool: h.buffers,
		// FlushInterval 0: ReverseProxy still flushes at once for event streams
		// and bodies of unknown length; flushing every write would cost a
		// syscall per chunk on the hot path.
		Rewrite: func(pr *httputil.ProxyRequest) {
			tg := pr.In.Context().Value(targetKey).(*proxyTarget)
			pr.SetURL(tg.url)
			// Keep the Host the browser used, so an instance's same-origin
			// checks (WebSocket Origin vs Host) see what the browser sees.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode != http.StatusSwitchingProtocols {
				return nil
			}
			tg, _ := resp.Request.Context().Value(targetKey).(*proxyTarget)
			if tg == nil {
				return nil
			}
			rwc, ok := resp.Body.(io.ReadWriteCloser)
			if !ok {
				return nil
			}
			// ReverseProxy refuses (502) a switch to another protocol than
			// the one asked for, and would never close what is counted here:
			// refused here instead, it closes the body.
			asked, got := upgradeType(resp.Request.Header), upgradeType(resp.Header)
			if !strings.EqualFold(asked, got) || !printable(got) {
				return fmt.Errorf("the instance switched to %q where %q was asked for", got, asked)
			}
			h.metrics.wsOpen.Inc()
			h.log.Info("ws open", "user", tg.user, "path", resp.Request.URL.Path)
			resp.Body = &wsConn{ReadWriteCloser: rwc, h: h, user: tg.user, start: h.now()}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			tg, _ := r.Context().Value(targetKey).(*proxyTarget)
			user := ""
			if tg != nil {
				user = tg.user
			}
			h.proxyError(w, r, user, err)
		},
	}
}

// proxyError answers a request the instance did not answer.
func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, user string, err error) {
	if r.Context().Err() == context.Canceled {
		return // the browser went away; nothing to answer
	}
	h.log.Warn("proxy to instance failed", "user", user, "path", r.URL.Path, "err", err)
	http.Error(w, "your t3 instance is not answering; try again in a moment", http.StatusBadGateway)
}

// wsConn wraps the upstream side of a proxied WebSocket to log its close:
// if the instance's side ended before the proxy closed it, the instance hung
// up; otherwise the client did.
type wsConn struct {
	io.ReadWriteCloser
	h     *Handler
	user  string
	start time.Time

	upstreamEnded atomic.Bool
	closing       atomic.Bool
	once          sync.Once

	// Each direction is copied by one goroutine, so each watcher has one
	// user; firstClose records who sent the first close frame.
	fromUpstream, fromClient frameWatcher
	firstClose               atomic.Value // string
}

// Read carries the instance's bytes toward the browser.
func (c *wsConn) Read(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(p)
	if n > 0 && c.fromUpstream.feed(p[:n]) {
		c.firstClose.CompareAndSwap(nil, "upstream")
	}
	if err != nil && !c.closing.Load() {
		c.upstreamEnded.Store(true)
	}
	return n, err
}

// Write carries the browser's bytes toward the instance.
func (c *wsConn) Write(p []byte) (int, error) {
	if c.fromClient.feed(p) {
		c.firstClose.CompareAndSwap(nil, "client")
	}
	return c.ReadWriteCloser.Write(p)
}

func (c *wsConn) Close() error {
	c.closing.Store(true)
	err := c.ReadWriteCloser.Close()
	c.once.Do(func() {
		// Who sent the first close frame hung up; with no close frame
		// (a dropped connection), the side whose stream ended first did.
		by, _ := c.firstClose.Load().(string)
		switch {
		case by != "":
		case c.upstreamEnded.Load():
			by = "upstream"
		default:
			by = "client"
		}
		c.h.metrics.wsOpen.Dec()
		c.h.log.Info("ws close", "user", c.user, "duration", c.h.now().Sub(c.start).Round(time.Millisecond), "closed_by", by)
	})
	return err
}

// bufferPool recycles copy buffers: without one, ReverseProxy allocates a
// 32 KiB buffer for every response it copies.
type bufferPool struct{ p *sync.Pool }

func newBufferPool() bufferPool {
	return bufferPool{p: &sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (bp bufferPool) Get() []byte  { return *bp.p.Get().(*[]byte) }
func (bp bufferPool) Put(b []byte) { bp.p.Put(&b) }

// discardLogger is the nil-logger default.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// upgradeType is the protocol an Upgrade field names, when Connection
// says upgrade ("" otherwise).
func upgradeType(h http.Header) string {
	for _, v := range h.Values("Connection") {
		if headerValueHasToken(v, "upgrade") {
			return h.Get("Upgrade")
		}
	}
	return ""
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
