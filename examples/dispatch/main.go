package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/pairing"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the parsed command line.
type config struct {
	listen, table, userHeader, trustedProxies, mintCommand, upstreamHost, logFormat string
	mintVersions, mintRunAs, homeRoot                                               string
	demo, listenSet, fastPath                                                       bool
	proxyUIDs                                                                       []uint32 // nil: no owner check
	userDomains                                                                     []string // nil: any @domain stripped
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("dispatch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", ":3780", "address to listen on")
	fs.StringVar(&c.table, "table", hostfiles.DefaultDispatchTable, "routing table: {\"<sso user>\": {\"os_user\": \"...\", \"port\": N}}")
	fs.StringVar(&c.userHeader, "user-header", pairing.DefaultUserHeader, "header carrying the SSO user name")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", "127.0.0.0/8,::1/128", "comma-separated CIDRs allowed to set the user header")
	proxyUsers := fs.String("trusted-proxy-users", "", "comma-separated user names or uids: a loopback peer may set the user header only from their sockets (read in /proc/net/tcp); empty: any local user may")
	userDomains := fs.String("user-domains", "", "comma-separated domains a user name's @domain suffix must be one of (names without one still pass); empty: any suffix is stripped, as the seed's dispatch did")
	fs.StringVar(&c.mintCommand, "mint-command", t3.DefaultMintCommand, "argv template minting a credential; {os_user} and {state_dir} are whole arguments; no shell")
	fs.StringVar(&c.mintVersions, "mint-versions", "", "side-by-side prefix of staged t3 builds (the updater's T3_PREFIX): mint with the build each instance runs instead of -mint-command")
	fs.StringVar(&c.mintRunAs, "mint-run-as", "sudo -n -u {os_user} --", "with -mint-versions: argv prefix the mint runs under")
	fs.StringVar(&c.homeRoot, "home-root", "/home", "with -mint-versions: state dir <home-root>/<os_user>/.t3 when the table has no state_dir")
	fs.StringVar(&c.upstreamHost, "upstream-host", hostfiles.DefaultUpstreamHost, "host the instances listen on")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&c.fastPath, "fast-path", true, "carry plain requests (GET/HEAD, bodies with a Content-Length; known user, live session) on the dispatch's own HTTP/1.1 path; false serves everything with net/http")
	fs.BoolVar(&c.demo, "demo", false, "run against fake instances with a user picker standing in for SSO")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) { c.listenSet = c.listenSet || f.Name == "listen" })
	if c.logFormat != "text" && c.logFormat != "json" {
		return c, fmt.Errorf("-log-format must be text or json, not %q", c.logFormat)
	}
	var err error
	if c.userDomains, err = parseUserDomains(*userDomains); err != nil {
		return c, err
	}
	c.proxyUIDs, err = parseProxyUsers(*proxyUsers)
	return c, err
}

// parseUserDomains reads -user-domains: comma-separated DNS names.
func parseUserDomains(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, d := range strings.Split(s, ",") {
		d = strings.TrimSpace(d)
		ok := d != "" && len(d) <= 253 && !strings.HasPrefix(d, ".") && !strings.HasSuffix(d, ".") && !strings.Contains(d, "..")
		for _, r := range d {
			ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.')
		}
		if !ok {
			return nil, fmt.Errorf("-user-domains: %q is no domain name", d)
		}
		out = append(out, d)
	}
	return out, nil
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// run is main without the process: flags in, exit code out.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "dispatch:", err)
		return 2
	}
	log := newLogger(c.logFormat, stderr)
	if c.demo {
		return runDemo(ctx, c, log, stdout, stderr)
	}
	trusted, err := pairing.ParseTrustedProxies(c.trustedProxies)
	if err != nil {
		fmt.Fprintln(stderr, "dispatch:", err)
		return 2
	}
	minter, err := newMinter(c)
	if err != nil {
		fmt.Fprintln(stderr, "dispatch:", err)
		return 2
	}
	table, err := hostfiles.NewDispatchTable(c.table, hostfiles.DispatchTableOptions{UpstreamHost: c.upstreamHost, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "dispatch:", err)
		return 1
	}
	reg := newRegistry()
	transport := pairing.NewUpstreamTransport()
	opts := withOwnerCheck(pairing.HandlerOptions{UserHeader: c.userHeader, TrustedProxies: trusted, UserDomains: c.userDomains, Transport: transport, Logger: log, Registerer: reg},
		c.proxyUIDs, log)
	h := pairing.NewHandler(table, pairing.NewPairer(minter, pairing.PairerOptions{Client: &http.Client{Transport: transport}}), opts)
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		fmt.Fprintln(stderr, "dispatch:", err)
		return 1
	}
	log.Info("dispatch listening", "addr", ln.Addr().String(), "table", c.table, "users", table.Users())
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	if err := serve(ctx, ln, newDispatchServer(h, reg, c.fastPath)); err != nil {
		log.Error("dispatch stopped", "err", err)
		return 1
	}
	return 0
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// withOps serves GET (and HEAD) /healthz and /metrics next to the
// dispatch, matched exactly; everything else goes to h as sent. (A
// ServeMux would answer a path that is not clean, "//" or "/../", with its
// own redirect, before h: XHR and assets would get a 307.)
func withOps(h http.Handler, reg *prometheus.Registry) http.Handler {
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			switch r.URL.Path {
			case "/healthz":
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				fmt.Fprintln(w, "ok")
				return
			case "/metrics":
				metrics.ServeHTTP(w, r)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// server is what serve runs: an *http.Server or a *pairing.Front.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// opsPaths are served by withOps' mux, never by the fast path.
var opsPaths = []string{"/healthz", "/metrics"}

// newDispatchServer serves h (and /healthz, /metrics) behind a pairing.Front:
// its fast path carries the steady state, net/http the rest.
func newDispatchServer(h *pairing.Handler, reg *prometheus.Registry, fast bool) server {
	return pairing.NewFront(h, pairing.FrontOptions{Fallback: withOps(h, reg), Reserved: opsPaths, DisableFast: !fast})
}

// serve runs srv on ln until ctx ends, then shuts it down gracefully
// (WebSockets are cut after a grace period).
func serve(ctx context.Context, ln net.Listener, srv server) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
