package pairing

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/sessionprobe"
)

// DefaultPairTimeout bounds one pairing (mint plus exchange), independent of
// the browser that asked for it.
const DefaultPairTimeout = 30 * time.Second

// HandlerOptions configures a Handler. The zero value works.
type HandlerOptions struct {
	// UserHeader carries the SSO user name; empty means DefaultUserHeader.
	UserHeader string
	// TrustedProxies are the peers allowed to set UserHeader; nil means
	// DefaultTrustedProxies (loopback). An empty non-nil slice trusts no one.
	TrustedProxies []netip.Prefix
	// UserDomains, when set, are the only "@domain" suffixes a user name
	// may carry (IdentityResolver.WithUserDomains); nil strips any.
	UserDomains []string
	// PeerOwner turns on the owner check: a peer on this host (loopback,
	// or one of its own addresses) may assert an identity only when its
	// socket belongs to one of TrustedProxyUIDs, as PeerOwner tells.
	// Loopback is open to every local user, and any of them can otherwise
	// claim any identity. The check runs once per connection (see
	// ConnContext); a lookup that fails refuses the peer, which gets an
	// untrusted peer's answer, and logs why. Peers on other machines are
	// honoured on TrustedProxies alone. nil (and no TrustedProxyUIDs): no
	// check.
	PeerOwner PeerOwner
	// TrustedProxyUIDs are the OS users whose local sockets may assert an
	// identity under the owner check. Set without a PeerOwner, every local
	// peer is refused; empty with one, too.
	TrustedProxyUIDs []uint32
	// Prober checks cookies on page loads; nil means a sessionprobe.HTTPProber
	// over Transport.
	Prober sessionprobe.Prober
	// Transport carries proxied requests (and the default probes); nil means
	// one NewUpstreamTransport shared by this handler.
	Transport http.RoundTripper
	// Logger receives the log lines; nil discards them.
	Logger *slog.Logger
	// Registerer receives the metrics; nil keeps them unregistered.
	// Handlers given the same Registerer share its series; to count them
	// apart, give each prometheus.WrapRegistererWith(labels, reg).
	Registerer prometheus.Registerer
	// LoopGuardMax is how many pairings of one user LoopGuardWindow allows;
	// zero means DefaultLoopGuardMax, negative disables the guard.
	LoopGuardMax int
	// LoopGuardWindow: zero means DefaultLoopGuardWindow.
	LoopGuardWindow time.Duration
	// PairTimeout bounds one pairing; zero means DefaultPairTimeout.
	PairTimeout time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Handler is the dispatch: it works out who the request is from and which
// instance is theirs, pairs the browser when it has no live session, and
// proxies everything else (WebSockets included) to the instance. Build one
// with NewHandler: the zero value is not usable.
type Handler struct {
	router       Router
	pairer       Pairer
	identity     *IdentityResolver
	prober       sessionprobe.Prober
	transport    http.RoundTripper
	answerClient *http.Client // over transport: is an instance answering at all
	rp           *httputil.ReverseProxy
	buffers      bufferPool
	log          *slog.Logger
	metrics      *metrics
	guard        *loopGuard
	co           coalescer
	pairTimeout  time.Duration
	now          func() time.Time

	urls sync.Map // base URL -> *url.URL
}

// NewHandler returns a dispatch over router and pairer.
func NewHandler(router Router, pairer Pairer, opts HandlerOptions) *Handler {
	h := &Handler{router: router, pairer: pairer, prober: opts.Prober, transport: opts.Transport,
		log: opts.Logger, now: opts.Now, pairTimeout: opts.PairTimeout}
	h.identity = NewIdentityResolver(opts.UserHeader, opts.TrustedProxies).WithUserDomains(opts.UserDomains...)
	if h.transport == nil {
		h.transport = NewUpstreamTransport()
	}
	if h.prober == nil {
		h.prober = sessionprobe.NewHTTPProber(sessionprobe.Options{Client: &http.Client{Transport: h.transport}})
	}
	if h.log == nil {
		h.log = discardLogger()
	}
	h.identity.owners = newOwnerCheck(opts, h.log)
	if h.now == nil {
		h.now = time.Now
	}
	if h.pairTimeout <= 0 {
		h.pairTimeout = DefaultPairTimeout
	}
	g := &loopGuard{max: opts.LoopGuardMax, window: opts.LoopGuardWindow}
	if g.max == 0 {
		g.max = DefaultLoopGuardMax
	}
	if g.window <= 0 {
		g.window = DefaultLoopGuardWindow
	}
	h.guard = g
	h.metrics = newMetrics(opts.Registerer)
	h.buffers = newBufferPool()
	h.rp = newReverseProxy(h.transport, h)
	h.answerClient = &http.Client{Transport: h.transport,
		// Any answer will do, a redirect too: it is not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return h
}

// ServeHTTP implements flow 1: identity, route, then pair or proxy.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, err := h.identity.User(r)
	p := h.plan(r.Context(), r, user, err)
	if p.kind == planProxy {
		h.proxy(w, r, p.in.User, p.target, p.page)
		return
	}
	h.answer(w, r, p)
}

// answer writes the Handler's own answer for a plan that does not proxy:
// a pairing or a refusal.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, p plan) {
	switch p.kind {
	case planRefuse:
		if p.logMsg != "" {
			h.log.Error(p.logMsg, p.logArgs...)
		}
		h.refuse(w, r, p.status, p.msg)
	case planPair:
		h.pair(w, r, p.in, p.cookies)
	}
}

type planKind int

const (
	planProxy planKind = iota
	planPair
	planRefuse
)

// plan is what ServeHTTP does with a request, decided before anything is
// written: the one decision the Front's fast path shares.
type plan struct {
	kind    planKind
	in      t3fleet.Instance
	target  *url.URL
	cookies []*http.Cookie // the t3 session cookies the request carries
	page    bool           // a top-level page load
	// planRefuse: the answer, and an error line to log first (if any).
	status  int
	msg     string
	logMsg  string
	logArgs []any
}

// plan resolves the user's instance (user and err are what the
// IdentityResolver made of r), removes the identity header from r, and
// checks the session cookie of a page load with the prober (under ctx).
func (h *Handler) plan(ctx context.Context, r *http.Request, user string, err error) plan {
	if err != nil {
		status := http.StatusBadRequest
		var ie *IdentityError
		if errors.As(err, &ie) {
			status = ie.Status
		}
		return plan{kind: planRefuse, status: status, msg: err.Error()}
	}
	in, ok := h.router.Route(user)
	if !ok {
		return plan{kind: planRefuse, status: http.StatusForbidden, msg: fmt.Sprintf("no t3 instance is configured for %s", user)}
	}
	if in.User == "" {
		in.User = user
	}
	const misconfigured = "the instance for this user is misconfigured"
	if err := t3fleet.ValidOSUser(in.OSUser); err != nil {
		return plan{kind: planRefuse, status: http.StatusInternalServerError, msg: misconfigured,
			logMsg: "routing table entry refused", logArgs: []any{"user", user, "err", err}}
	}
	target, err := h.targetURL(in.BaseURL)
	if err != nil {
		return plan{kind: planRefuse, status: http.StatusInternalServerError, msg: misconfigured,
			logMsg: "routing table entry refused", logArgs: []any{"user", user, "base_url", in.BaseURL, "err", err}}
	}
	r.Header.Del(h.identity.Header())

	p := plan{kind: planProxy, in: in, target: target, page: sessionprobe.IsPageLoad(r)}
	if !p.page && sessionprobe.IsSubresource(r) {
		return p // proxied with or without a cookie: none is parsed
	}
	p.cookies = sessionprobe.SessionCookies(r)
	switch {
	case len(p.cookies) == 0:
		p.kind = planPair // a navigation without a session
	case p.page:
		v, err := h.prober.Check(ctx, in, p.cookies)
		if int(v) >= 0 && int(v) < len(h.metrics.verdict) {
			h.metrics.verdict[v].Inc()
		}
		if err != nil {
			h.log.Debug("session probe in doubt, proxying", "user", in.User, "err", err)
		}
		if v == sessionprobe.Invalid {
			p.kind = planPair
		}
	}
	return p
}

func (h *Handler) proxy(w http.ResponseWriter, r *http.Request, user string, target *url.URL, page bool) {
	ws := sessionprobe.IsWebSocket(r)
	switch {
	case ws:
		h.metrics.proxiedWS.Inc()
	case page:
		h.metrics.proxiedPage.Inc()
	default:
		h.metrics.proxiedOther.Inc()
	}
	if !ws && canForward(r, target) {
		h.forward(w, r, user, target)
		return
	}
	if ws {
		// An open tab reconnects as soon as its instance is back after a
		// restart, when t3 accepts connections it never answers: an
		// upgrade sent then would hang for good.
		if err := waitAnswering(r.Context(), h.answerClient, target.String(), DefaultExchangeTimeout); err != nil {
			h.proxyError(w, r, user, err)
			return
		}
	}
	tg := &proxyTarget{user: user, url: target}
	h.rp.ServeHTTP(streamOnlyFlusher{w}, r.WithContext(context.WithValue(r.Context(), targetKey, tg)))
}

// pair pairs in (once, however many requests ask at the same time), relays
// the session cookies, expires the stale ones the browser sent, and sends
// the browser back to the same path and query.
func (h *Handler) pair(w http.ResponseWriter, r *http.Request, in t3fleet.Instance, stale []*http.Cookie) {
	if !h.guard.allow(in.User, h.now()) {
		h.metrics.pair(OutcomeLoopGuard, "", false)
		h.log.Error(fmt.Sprintf("pairing for %s stopped by the loop guard", in.User), "user", in.User)
		h.loopPage(w)
		return
	}
	h.metrics.waiting.Inc()
	s, err := h.co.do(r.Context(), in.User+"\x00"+in.BaseURL, func() (*Session, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.pairTimeout)
		defer cancel()
		return h.pairOnce(ctx, in)
	})
	h.metrics.waiting.Dec()
	if err != nil {
		if r.Context().Err() != nil {
			return // this browser gave up waiting
		}
		var me *MintError
		var xe *ExchangeError
		switch {
		case errors.As(err, &me):
			plain(w, http.StatusInternalServerError, "could not mint a pairing credential for your t3 instance")
		case errors.As(err, &xe) && xe.Status != 0:
			plain(w, http.StatusBadGateway, fmt.Sprintf("your t3 instance refused the pairing (%d at %s)", xe.Status, xe.Endpoint))
		default:
			plain(w, http.StatusBadGateway, "your t3 instance did not answer the pairing")
		}
		return
	}
	fresh := map[string]bool{}
	for _, c := range s.Cookies {
		rc := *c
		rc.Domain = "" // the instance's host is not the one the browser sees
		rc.Raw, rc.Unparsed = "", nil
		http.SetCookie(w, &rc)
		fresh[c.Name] = true
	}
	for _, c := range stale {
		if !fresh[c.Name] {
			http.SetCookie(w, &http.Cookie{Name: c.Name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", sameURL(r.URL))
	w.WriteHeader(http.StatusFound)
}

// pairOnce runs one pairing and does its logging, metrics and loop-guard
// bookkeeping, once however many requests share the result.
func (h *Handler) pairOnce(ctx context.Context, in t3fleet.Instance) (*Session, error) {
	s, err := h.pairer.Pair(ctx, in)
	if err == nil && s != nil {
		// Only t3 session cookies with a value are relayed, whatever Pairer
		// the embedder plugged in.
		cs := *s
		cs.Cookies = relayable(s.Cookies)
		s = &cs
	}
	if err == nil && (s == nil || len(s.Cookies) == 0) { // a Pairer that broke its contract
		ep := ""
		if s != nil {
			ep = s.Endpoint
		}
		s, err = nil, &ExchangeError{Endpoint: ep, Status: http.StatusOK, Err: ErrNoSessionCookie}
	}
	var me *MintError
	var xe *ExchangeError
	switch {
	case err == nil:
		h.metrics.mint.Observe(s.MintDuration.Seconds())
		h.metrics.pair(OutcomeOK, s.Endpoint, s.Fallback)
		h.guard.record(in.User, h.now())
		h.log.Info("paired", "user", in.User, "endpoint", s.Endpoint, "fallback", s.Fallback)
	case errors.As(err, &me):
		if me.Duration > 0 {
			h.metrics.mint.Observe(me.Duration.Seconds())
		}
		h.metrics.pair(OutcomeMintFailed, "", false)
		h.log.Error(fmt.Sprintf("mint for %s failed: %v", in.User, me.Err), "user", in.User)
	case errors.As(err, &xe):
		h.metrics.pair(OutcomeExchangeFailed, xe.Endpoint, false)
		status := "error"
		if xe.Status != 0 {
			status = strconv.Itoa(xe.Status)
		}
		h.log.Error(fmt.Sprintf("pairing for %s returned %s (endpoint=%s)", in.User, status, xe.Endpoint),
			"user", in.User, "status", xe.Status, "endpoint", xe.Endpoint, "body", xe.Body, "err", xe.Err)
	default:
		h.metrics.pair(OutcomeExchangeFailed, "", false)
		h.log.Error(fmt.Sprintf("pairing for %s returned error (endpoint=unknown): %v", in.User, err), "user", in.User)
	}
	return s, err
}

func (h *Handler) targetURL(base string) (*url.URL, error) {
	if u, ok := h.urls.Load(base); ok {
		return u.(*url.URL), nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base URL %q is not http(s)://host", base)
	}
	h.urls.Store(base, u)
	return u, nil
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.metrics.refused.WithLabelValues(strconv.Itoa(status)).Inc()
	h.log.Warn("request refused", "status", status, "reason", msg, "peer", r.RemoteAddr, "path", r.URL.Path)
	plain(w, status, msg)
}

func (h *Handler) loopPage(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Retry-After", strconv.Itoa(int(h.guard.window.Seconds())))
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, "<!doctype html><title>Sign-in loop stopped</title><h1>Sign-in loop stopped</h1>"+
		"<p>Your t3 instance keeps rejecting the fresh sessions this proxy gives it (%d sign-ins within %s), "+
		"so it stopped redirecting you to avoid a loop.</p><p>Wait a minute and reload; if it keeps happening, "+
		"tell your administrator.</p>\n", h.guard.max, html.EscapeString(h.guard.window.String()))
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// sameURL is the relative Location that sends a browser back where it was:
// the request's path and query only, with leading slashes and backslashes
// collapsed so it can never read as another host ("//evil.example").
func sameURL(u *url.URL) string {
	p := u.EscapedPath()
	p = "/" + strings.TrimLeft(p, "/\\")
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p
}
