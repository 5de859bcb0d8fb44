package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/pairing"
	"github.com/t3fleet/t3fleet/sessionprobe"
)

// DemoLoginPath is the demo's stand-in for the SSO login page.
const DemoLoginPath = "/_demo/"

// demoCookie remembers who picked which user on the login page.
const demoCookie = "t3fleet_demo_user"

// DemoOptions configures StartDemo. The zero value works.
type DemoOptions struct {
	// Listen is the address of the front (the login page and the SSO
	// stand-in); empty means 127.0.0.1 on a free port.
	Listen string
	// Dir holds the instances' base dirs and the routing table; empty means
	// a new temporary directory, removed by Close.
	Dir string
	// Logger receives the dispatch's log lines; nil discards them.
	Logger *slog.Logger
	// Registry receives the dispatch's metrics and is served at /metrics;
	// nil means a new one.
	Registry *prometheus.Registry
}

// DemoUser is one demo user and the fake instance that is theirs.
type DemoUser struct {
	SSO    string // the name the login page asserts
	OSUser string
	Era    t3test.Era
	Server *t3test.Server
}

// Demo is a running demo: fake t3 instances in different eras, the dispatch
// in front of them, and a login page standing in for SSO.
type Demo struct {
	// URL is the login page a person opens (http://host:port/_demo/).
	URL string
	// FrontURL is the front's root: requests there carry the picked user's
	// identity header to the dispatch, as an SSO proxy would.
	FrontURL string
	// DispatchURL is the dispatch's own loopback listener.
	DispatchURL string
	// TablePath is the dispatch.json the demo wrote.
	TablePath string
	// Users are the demo's users, as started; User returns one as it is
	// now (Restart gives it a new Server).
	Users []DemoUser
	mu    sync.Mutex // Users, once started

	closeOnce sync.Once
	closers   []func()
	minter    *demoMinter
}

// demoUsers are three users whose instances sit in different eras: before
// the exchange rename, after the scopes migration, and with per-environment
// cookie names.
var demoUsers = []struct {
	sso, os string
	era     t3test.Era
	remote  bool
}{
	{"ana", "ana", t3test.EraA, false},
	{"emil.barzin", "emil", t3test.EraC, false},
	{"kim", "kim", t3test.EraE, true},
}

// StartDemo starts the fake instances, the dispatch and the front. Close it.
func StartDemo(ctx context.Context, opts DemoOptions) (_ *Demo, err error) {
	d := &Demo{}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "t3fleet-demo-"); err != nil {
			return nil, err
		}
		d.closers = append(d.closers, func() { _ = os.RemoveAll(dir) })
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	table := map[string]hostfiles.DispatchEntry{}
	minter := &demoMinter{servers: map[string]*t3test.Server{}}
	d.minter = minter
	d.closers = append(d.closers, minter.closeAll)
	for _, u := range demoUsers {
		srv, err := t3test.Start(ctx, filepath.Join(dir, u.os, ".t3"), t3test.Options{Era: u.era, User: u.sso, RemoteReachable: u.remote})
		if err != nil {
			return nil, fmt.Errorf("demo instance for %s: %w", u.sso, err)
		}
		minter.set(u.os, srv)
		table[u.sso] = hostfiles.DispatchEntry{OSUser: u.os, Port: port(srv), StateDir: srv.BaseDir}
		d.Users = append(d.Users, DemoUser{SSO: u.sso, OSUser: u.os, Era: u.era, Server: srv})
	}
	d.TablePath = filepath.Join(dir, "dispatch.json")
	data, _ := json.MarshalIndent(table, "", "  ")
	if err := os.WriteFile(d.TablePath, data, 0o644); err != nil {
		return nil, err
	}
	router, err := hostfiles.NewDispatchTable(d.TablePath, hostfiles.DispatchTableOptions{Logger: log})
	if err != nil {
		return nil, err
	}

	reg := opts.Registry
	if reg == nil {
		reg = newRegistry()
	}
	transport := pairing.NewUpstreamTransport()
	h := pairing.NewHandler(router, pairing.NewPairer(minter, pairing.PairerOptions{Client: &http.Client{Transport: transport}}),
		pairing.HandlerOptions{
			Transport: transport, Logger: log, Registerer: reg,
			// The demo shows a wiped session re-pairing on the next reload,
			// so it does not cache live verdicts.
			Prober: sessionprobe.NewHTTPProber(sessionprobe.Options{Client: &http.Client{Transport: transport}, CacheTTL: -1}),
		})
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d.DispatchURL = "http://" + dln.Addr().String()
	d.closers = append(d.closers, startServer(dln, newDispatchServer(h, reg, true)))

	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	fln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	d.FrontURL = "http://" + fln.Addr().String()
	d.URL = d.FrontURL + DemoLoginPath
	target, _ := url.Parse(d.DispatchURL)
	d.closers = append(d.closers, startServer(fln, &http.Server{Handler: newFront(d, target), ReadHeaderTimeout: 10 * time.Second}))
	return d, nil
}

// User returns the demo user with SSO name sso.
func (d *Demo) User(sso string) (DemoUser, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.Users {
		if u.SSO == sso {
			return u, true
		}
	}
	return DemoUser{}, false
}

// Restart stops sso's instance and starts it again on the same state and
// port, as a nightly bump's restart does, with faults (a zero value for a
// healthy start); it returns the new server. One Restart at a time.
func (d *Demo) Restart(ctx context.Context, sso string, faults t3test.Faults) (*t3test.Server, error) {
	d.mu.Lock()
	i := slices.IndexFunc(d.Users, func(u DemoUser) bool { return u.SSO == sso })
	var u DemoUser
	if i >= 0 {
		u = d.Users[i]
	}
	d.mu.Unlock()
	if i < 0 {
		return nil, fmt.Errorf("restart: no demo user %q", sso)
	}
	old := u.Server
	old.Close()
	opts := old.Options()
	opts.Port, opts.Faults = port(old), faults
	srv, err := t3test.Start(ctx, old.BaseDir, opts)
	if err != nil {
		return nil, fmt.Errorf("restart %s: %w", sso, err)
	}
	d.minter.set(u.OSUser, srv)
	d.mu.Lock()
	d.Users[i].Server = srv
	d.mu.Unlock()
	return srv, nil
}

// port is the port srv listens on.
func port(srv *t3test.Server) int {
	_, p, _ := net.SplitHostPort(srv.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Close stops everything StartDemo started, newest first.
func (d *Demo) Close() {
	d.closeOnce.Do(func() {
		for i := len(d.closers) - 1; i >= 0; i-- {
			d.closers[i]()
		}
	})
}

func startServer(ln net.Listener, srv server) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = serve(ctx, ln, srv)
	}()
	return func() { cancel(); <-done }
}

// demoMinter mints in-process through the fake instance's own database, as
// its CLI would. It holds the instances, and closes them.
type demoMinter struct {
	mu      sync.Mutex
	servers map[string]*t3test.Server
}

func (m *demoMinter) set(os string, srv *t3test.Server) {
	m.mu.Lock()
	m.servers[os] = srv
	m.mu.Unlock()
}

func (m *demoMinter) closeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, srv := range m.servers {
		srv.Close()
	}
}

func (m *demoMinter) Mint(_ context.Context, in t3fleet.Instance) (pairing.Credential, error) {
	m.mu.Lock()
	srv := m.servers[in.OSUser]
	m.mu.Unlock()
	if srv == nil {
		return pairing.Credential{}, errors.New("no demo instance for " + in.OSUser)
	}
	cred, err := srv.Mint(0)
	if err != nil {
		return pairing.Credential{}, err
	}
	return pairing.Credential{Secret: cred}, nil
}

// newFront is the SSO stand-in: a login page that remembers the picked user
// in a cookie, and a proxy hop that asserts that user to the dispatch in the
// identity header, over loopback, as Authentik's forward-auth would.
func newFront(d *Demo, dispatch *url.URL) http.Handler {
	rp := &httputil.ReverseProxy{
		FlushInterval: -1,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(dispatch)
			pr.Out.Host = pr.In.Host
			if u, ok := pr.In.Context().Value(frontUser{}).(string); ok { // none for /healthz and /metrics
				pr.Out.Header.Set(pairing.DefaultUserHeader, u)
			}
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DemoLoginPath+"{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		d.mu.Lock()
		users := slices.Clone(d.Users) // Restart swaps servers meanwhile
		d.mu.Unlock()
		_ = loginPage.Execute(w, struct{ Users []DemoUser }{users})
	})
	mux.HandleFunc("POST "+DemoLoginPath+"login", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := d.User(r.FormValue("user")); !ok {
			http.Error(w, "unknown demo user", http.StatusBadRequest)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: demoCookie, Value: r.FormValue("user"), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc(DemoLoginPath+"logout", func(w http.ResponseWriter, r *http.Request) {
		for _, c := range r.Cookies() { // forget the demo login and every t3 session
			if c.Name == demoCookie || sessionprobe.IsSessionCookieName(c.Name) {
				http.SetCookie(w, &http.Cookie{Name: c.Name, Path: "/", MaxAge: -1})
			}
		}
		http.Redirect(w, r, DemoLoginPath, http.StatusSeeOther)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && slices.Contains(opsPaths, r.URL.Path) {
			rp.ServeHTTP(w, r) // the dispatch's own /healthz and /metrics need no user (its login page links them)
			return
		}
		c, err := r.Cookie(demoCookie)
		if err != nil {
			if sessionprobe.IsPageLoad(r) {
				http.Redirect(w, r, DemoLoginPath, http.StatusFound)
				return
			}
			http.Error(w, "not signed in to the demo", http.StatusUnauthorized)
			return
		}
		if _, ok := d.User(c.Value); !ok {
			http.Redirect(w, r, DemoLoginPath+"logout", http.StatusFound)
			return
		}
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), frontUser{}, c.Value)))
	})
	return mux
}

type frontUser struct{}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>t3fleet demo: sign in</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}button{margin:.3rem 0;padding:.4rem 1rem}</style></head>
<body><h1>t3fleet dispatch demo</h1>
<p>This page stands in for SSO. Pick a user: the dispatch pairs your browser into that user's own
(fake) t3 instance and you land on it, with no pairing prompt.</p>
<form method="post" action="/_demo/login">
{{range .Users}}<div><button id="login-{{.SSO}}" name="user" value="{{.SSO}}">{{.SSO}}</button>
 era {{.Era}}, t3 {{.Server.Version}}, cookie {{.Server.CookieName}}</div>
{{end}}</form>
<p><a href="/_demo/logout">sign out</a> · <a href="/metrics">metrics</a> · <a href="/healthz">healthz</a></p>
</body></html>
`))

// runDemo is -demo: start the demo, print where to go, wait for ^C.
func runDemo(ctx context.Context, c config, log *slog.Logger, stdout, stderr io.Writer) int {
	listen := "127.0.0.1:3780" // loopback unless asked otherwise: the demo has no real SSO
	if c.listenSet {
		listen = c.listen
	}
	d, err := StartDemo(ctx, DemoOptions{Listen: listen, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "dispatch -demo:", err)
		return 1
	}
	defer d.Close()
	fmt.Fprintf(stdout, "t3fleet dispatch demo: open %s and pick a user\n", d.URL)
	for _, u := range d.Users {
		fmt.Fprintf(stdout, "  %-12s era %s  t3 %-28s %s\n", u.SSO, u.Era, u.Server.Version, u.Server.URL)
	}
	fmt.Fprintln(stdout, "press Ctrl-C to stop")
	<-ctx.Done()
	return 0
}
