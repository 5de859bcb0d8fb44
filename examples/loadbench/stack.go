package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
	"github.com/t3fleet/t3fleet/sessionprobe"
)

// benchUser is the one SSO user the load runs as.
const (
	benchUser   = "bench.user"
	benchOSUser = "bench"
	userHeader  = pairing.DefaultUserHeader
)

// stack is the dispatch in front of one upstream instance, both on loopback,
// with a browser session already paired through the dispatch.
type stack struct {
	proxyURL string
	upstream upstream
	probes   *countingTransport // the session probes the dispatch sent
	cookie   string             // "name=value" of the paired session
	reg      *prometheus.Registry
	srv      *pairing.Front
	relay    *relay      // with -relay: what the "proxy" URLs reach
	nginx    *nginxProxy // with -nginx: what the "proxy" URLs reach
}

// staticRouter routes the one bench user.
type staticRouter map[string]t3fleet.Instance

func (r staticRouter) Route(user string) (t3fleet.Instance, bool) {
	in, ok := r[user]
	return in, ok
}

// stackOptions say which dispatch startStack builds.
type stackOptions struct {
	// bare: once paired, the dispatch is replaced by a plain
	// httputil.ReverseProxy over the same transport: the floor of what any
	// net/http proxy costs on this machine, to tell the dispatch's own cost
	// from the hop's.
	bare bool
	// netHTTP: the Front's fast path off.
	netHTTP bool
	// plainIO: sockets read and written through net.Conn (PlainIO).
	plainIO bool
}

// startStack starts the upstream, the dispatch in front of it, and pairs one
// browser session through the dispatch the way a first visit does.
func startStack(ctx context.Context, logw io.Writer, o stackOptions) (*stack, error) {
	up, err := startUpstream(ctx, logw)
	if err != nil {
		return nil, err
	}
	st := &stack{upstream: up, reg: prometheus.NewRegistry()}
	router := staticRouter{benchUser: {User: benchUser, OSUser: benchOSUser, BaseURL: up.BaseURL}}
	// Wired as examples/dispatch wires it: one tuned transport shared by the
	// pairer, the probe and the proxy; the default text log at info level
	// (the proxy path logs nothing per request at that level); /healthz and
	// /metrics on a mux in front.
	// The prober is the handler's default one (over the same transport),
	// with a counter on the probes that leave it.
	transport := pairing.NewUpstreamTransport()
	transport.PlainIO = o.plainIO
	st.probes = &countingTransport{next: transport}
	h := pairing.NewHandler(router, pairing.NewPairer(up.Minter, pairing.PairerOptions{Client: &http.Client{Transport: transport}}),
		pairing.HandlerOptions{
			UserHeader: userHeader,
			Transport:  transport,
			Prober:     sessionprobe.NewHTTPProber(sessionprobe.Options{Client: &http.Client{Transport: st.probes}}),
			Registerer: st.reg,
			Logger:     slog.New(slog.NewTextHandler(logw, nil)),
		})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("GET /metrics", promhttp.HandlerFor(st.reg, promhttp.HandlerOpts{}))
	mux.Handle("/", h)
	front := &swapHandler{}
	var first http.Handler = mux
	front.h.Store(&first)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		up.Close()
		return nil, err
	}
	// As examples/dispatch serves it: the Front's fast path for the steady
	// state, net/http for the rest. -bare and -net-http turn the fast path
	// off.
	st.srv = pairing.NewFront(h, pairing.FrontOptions{Fallback: front, Reserved: []string{"/healthz", "/metrics"},
		DisableFast: o.bare || o.netHTTP, PlainIO: o.plainIO})
	go st.srv.Serve(ln)
	st.proxyURL = "http://" + ln.Addr().String()
	if st.cookie, err = st.pair(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if o.bare {
		target, err := url.Parse(up.BaseURL)
		if err != nil {
			st.Close()
			return nil, err
		}
		var rp http.Handler = &httputil.ReverseProxy{
			Transport: transport,
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
			ErrorLog:  log.New(io.Discard, "", 0), // wrk drops connections mid-request at the end of a pass
		}
		front.h.Store(&rp)
	}
	return st, nil
}

// swapHandler serves with the handler stored last.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// pair makes a first visit through the dispatch and returns the session
// cookie it set.
func (st *stack) pair(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.proxyURL+"/", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(userHeader, benchUser)
	req.Header.Set("Sec-Fetch-Dest", "document")
	req.Header.Set("Accept", "text/html")
	client := &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("first visit: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return "", fmt.Errorf("first visit: status %d, want 302 from pairing: %s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if sessionprobe.IsSessionCookieName(c.Name) && c.Value != "" {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", errors.New("first visit: pairing set no t3 session cookie")
}

// Paths are the two request shapes the issue measures, each through the
// dispatch and directly on the upstream.
func (st *stack) Paths(assetPath string) []path {
	common := []string{userHeader + ": " + benchUser, "Cookie: " + st.cookie}
	return []path{
		{
			Name: "asset", Target: DefaultAssetTarget,
			Proxy: st.proxyURL + assetPath, Direct: st.upstream.BaseURL + assetPath,
			Headers: append([]string{"Accept: */*", "Sec-Fetch-Dest: script", "Sec-Fetch-Mode: no-cors"}, common...),
		},
		{
			Name: "page", Target: DefaultPageTarget,
			Proxy: st.proxyURL + "/", Direct: st.upstream.BaseURL + "/",
			Headers: append([]string{"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
				"Sec-Fetch-Dest: document", "Sec-Fetch-Mode: navigate"}, common...),
		},
	}
}

// Handoffs is how many connections the dispatch's fast path handed to
// net/http's server so far.
func (st *stack) Handoffs() int {
	mfs, _ := st.reg.Gather()
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == pairing.MetricHandoffs {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return int(n)
}

// Stats summarises what the dispatch did during the runs: probes by verdict
// and pairings, from its own metrics.
func (st *stack) Stats() string {
	mfs, err := st.reg.Gather()
	if err != nil {
		return "dispatch metrics: " + err.Error()
	}
	var b strings.Builder
	b.WriteString("dispatch metrics:")
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.Contains(name, "probe") && !strings.Contains(name, "pair") && !strings.Contains(name, "proxied") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue()
			if m.GetCounter() == nil {
				continue
			}
			fmt.Fprintf(&b, " %s{%s}=%.0f", name, strings.Join(labels, ","), v)
		}
	}
	return b.String()
}

// Close stops the dispatch and the upstream.
func (st *stack) Close() {
	if st.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = st.srv.Shutdown(ctx)
		cancel()
	}
	if st.relay != nil {
		st.relay.Close()
	}
	if st.nginx != nil {
		st.nginx.Close()
	}
	st.upstream.Close()
}

// useRelay points the proxy side of the runs at a TCP relay to the upstream
// instead of the dispatch (once the session is paired).
func (st *stack) useRelay() error {
	r, err := startRelay(st.upstream.BaseURL)
	if err != nil {
		return err
	}
	st.relay, st.proxyURL = r, r.URL()
	return nil
}

// useNginx points the proxy side of the runs at a real nginx in front of the
// upstream instead of the dispatch (once the session is paired).
func (st *stack) useNginx(ctx context.Context, workers string, logw io.Writer) error {
	n, err := startNginx(ctx, st.upstream.BaseURL, workers, logw)
	if err != nil {
		return err
	}
	st.nginx, st.proxyURL = n, n.URL()
	return nil
}

// nginxCPU is the CPU time nginx used so far; 0 without -nginx.
func (st *stack) nginxCPU() time.Duration {
	if st.nginx == nil {
		return 0
	}
	return st.nginx.CPU()
}

// countingTransport counts the requests that go through it.
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// Count is how many requests went through so far.
func (c *countingTransport) Count() int64 { return c.n.Load() }
