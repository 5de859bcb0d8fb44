package t3test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"zombiezen.com/go/sqlite"
)

// DefaultEra is what a server or CLI plays when neither Era nor Version is set.
const DefaultEra = EraE

// DefaultHost is where a fake server binds when Options.Host is empty.
const DefaultHost = "127.0.0.1"

// Options configure a fake server. The zero value is a healthy DefaultEra
// build on a random loopback port.
type Options struct {
	// Era defaults to EraFor(Version), or DefaultEra when Version is empty too.
	Era Era
	// Version is the serverVersion reported; defaults to DefaultVersion(Era).
	Version string
	// Host to bind; default DefaultHost. It also drives the cookie-name rule
	// (0.0.0.0 and :: count as remote-reachable).
	Host string
	// Port to bind; 0 picks a free one.
	Port int
	// Mode is "web" (default) or "desktop" (cookie t3_session_<port>).
	Mode string
	// RemoteReachable names the cookie as if bound to a remote-reachable
	// host while still listening on Host, so tests stay on loopback.
	RemoteReachable bool
	// User is shown on the index page and in the environment label.
	User   string
	Faults Faults
	// Logger receives the server log too (it always goes to LogPath); nil
	// means the file only.
	Logger *slog.Logger
	// Now is the clock for expiries; nil means time.Now.
	Now func() time.Time
}

// Server is a running fake t3 serve on a real listener, sharing its base dir
// (and so its database) with the fake CLI.
type Server struct {
	URL           string // http://host:port, no trailing slash
	Addr          string // host:port
	BaseDir       string // absolute
	Era           Era
	Version       string
	EnvironmentID string
	// OwnerPairingURL is the owner pairing URL serve prints at start; empty
	// when the owner link could not be written (e.g. an old build on a
	// forward-migrated DB).
	OwnerPairingURL string

	opts       Options
	log        *slog.Logger
	logFile    *os.File
	key        []byte
	cookieName string
	remote     bool
	now        func() time.Time

	dbMu sync.Mutex
	db   *sqlite.Conn

	faultsMu sync.Mutex
	faults   Faults

	httpSrv  *http.Server
	ready    chan struct{}
	closing  chan struct{}
	served   chan struct{}
	handlers sync.WaitGroup
	lifeMu   sync.Mutex // orders handlers.Add before Close's Wait
	wsMu     sync.Mutex
	ws       map[*websocket.Conn]struct{}
	closed   sync.Once
	attached atomic.Bool // the handler answers connections accepted from now on

	exchanges     atomic.Int64
	sessionChecks atomic.Int64
	wsOpened      atomic.Int64
}

// NewServer starts a fake t3 serve on baseDir and panics when it cannot, as
// httptest.NewServer does. Register t.Cleanup(srv.Close).
func NewServer(baseDir string, opts Options) *Server {
	s, err := Start(context.Background(), baseDir, opts)
	if err != nil {
		panic(fmt.Sprintf("t3test: %v", err))
	}
	return s
}

// Start is NewServer returning its error: a migration failure (a
// *MigrationError, after logging `Migration "<id>_<Name>" failed`) or a bind
// error. With Faults.SlowStart it returns before the listener is up; Ready
// says when it is.
func Start(ctx context.Context, baseDir string, opts Options) (*Server, error) {
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		return nil, fmt.Errorf("serve %s: %w", baseDir, err)
	}
	if opts.Era == "" && opts.Version != "" {
		opts.Era = EraFor(opts.Version)
		if opts.Era == "" {
			return nil, fmt.Errorf("serve %s: %w for version %q", abs, ErrUnknownEra, opts.Version)
		}
	}
	if opts.Era == "" {
		opts.Era = DefaultEra
	}
	if !opts.Era.Valid() {
		return nil, fmt.Errorf("serve %s: %w %q", abs, ErrUnknownEra, opts.Era)
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion(opts.Era)
	}
	if opts.Host == "" {
		opts.Host = DefaultHost
	}
	s := &Server{
		BaseDir: abs, Era: opts.Era, Version: opts.Version, opts: opts, faults: opts.Faults,
		now: opts.Now, ready: make(chan struct{}), closing: make(chan struct{}), served: make(chan struct{}),
		ws: map[*websocket.Conn]struct{}{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.setup(ctx); err != nil {
		s.abort()
		return nil, err
	}
	return s, nil
}

func (s *Server) setup(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(LogPath(s.BaseDir)), 0o755); err != nil {
		return fmt.Errorf("serve %s: %w", s.BaseDir, err)
	}
	f, err := os.OpenFile(LogPath(s.BaseDir), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("serve %s: %w", s.BaseDir, err)
	}
	s.logFile = f
	var h slog.Handler = slog.NewTextHandler(f, nil)
	if s.opts.Logger != nil {
		h = slog.NewMultiHandler(h, s.opts.Logger.Handler())
	}
	s.log = slog.New(h)
	s.log.Info(fmt.Sprintf("Starting t3 v%s", s.Version), "era", string(s.Era), "baseDir", s.BaseDir)

	if s.opts.Faults.DeafStart > 0 && s.opts.Faults.SlowStart > 0 {
		return fmt.Errorf("serve %s: faults: deafstart and slowstart exclude each other", s.BaseDir)
	}
	// t3 builds its HTTP server layer first, which binds the port, then
	// SQLite (the migrations), providers and routes, and attaches its
	// request handler last: a connection made before that is never
	// answered (t3code #12215). So the port is bound, deaf, before the
	// migrations; a taken port fails before the database is touched.
	addr := net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
	if s.opts.Faults.SlowStart > 0 {
		if s.opts.Port == 0 {
			// Reserve a port now so URL is known; nobody listens until later.
			if addr, err = freeAddr(s.opts.Host); err != nil {
				return fmt.Errorf("serve %s: %w", s.BaseDir, err)
			}
		}
	} else {
		ln, err := s.listenDeaf(addr)
		if err != nil {
			s.log.Error("Server failed to start", "error", err.Error())
			return fmt.Errorf("serve %s: %w", s.BaseDir, err)
		}
		addr = ln.Addr().String()
	}
	s.Addr = addr
	s.URL = "http://" + addr

	if _, err := migrate(ctx, s.BaseDir, s.Era, migrateOptions{fail: s.opts.Faults.MigrationFails, logger: s.log}); err != nil {
		s.log.Error("Server failed to start", "error", err.Error())
		return fmt.Errorf("serve %s: %w", s.BaseDir, err)
	}
	if s.EnvironmentID, err = EnvironmentID(s.BaseDir); err != nil {
		return fmt.Errorf("serve %s: %w", s.BaseDir, err)
	}
	if s.key, err = os.ReadFile(signingKeyPath(s.BaseDir)); err != nil {
		return fmt.Errorf("serve %s: signing key: %w", s.BaseDir, err)
	}
	if s.db, err = openDB(liveDBFor(s.BaseDir, s.Era), s.Era); err != nil {
		return fmt.Errorf("serve %s: %w", s.BaseDir, err)
	}
	s.continueThreads()

	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	s.remote = s.opts.RemoteReachable || RemoteReachable(s.opts.Host)
	s.cookieName = CookieNameFor(s.Era, s.remote, s.opts.Mode == "desktop", port, s.BaseDir, s.EnvironmentID)

	s.dbMu.Lock()
	link, err := insertPairing(s.db, s.Era, PairingOptions{Owner: true, Now: s.now})
	s.dbMu.Unlock()
	if err != nil {
		s.log.Error("Failed to create owner pairing link", "error", err.Error())
	} else {
		s.OwnerPairingURL = s.URL + "/pair#token=" + link.Credential
	}

	if s.opts.Faults.SlowStart == 0 { // serving already, deaf until the attach
		if s.opts.Faults.DeafStart > 0 {
			go s.attachAfter(s.opts.Faults.DeafStart)
		} else {
			s.attach()
		}
		return nil
	}
	s.httpSrv = s.newHTTPServer()
	go func() {
		t := time.NewTimer(s.opts.Faults.SlowStart)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.closing:
			close(s.served)
			return
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			s.log.Error("Failed to listen", "addr", addr, "error", err.Error())
			close(s.served)
			return
		}
		s.serve(l)
	}()
	return nil
}

func (s *Server) serve(ln net.Listener) {
	s.attached.Store(true)
	s.log.Info("Listening on " + s.URL)
	close(s.ready)
	go s.runHTTP(ln)
}

func (s *Server) newHTTPServer() *http.Server {
	return &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second, ConnContext: s.connContext}
}

func (s *Server) runHTTP(ln net.Listener) {
	defer close(s.served)
	if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("Server stopped", "error", err.Error())
	}
}

func freeAddr(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// enter registers a request unless the server is closing.
func (s *Server) enter() bool {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	select {
	case <-s.closing:
		return false
	default:
		s.handlers.Add(1)
		return true
	}
}

// Ready is closed once the listener is up and answering (at once unless
// Faults.SlowStart or Faults.DeafStart).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Done is closed when the server has stopped serving.
func (s *Server) Done() <-chan struct{} { return s.served }

// Close stops the server and blocks until every request and WebSocket has
// ended and the database is closed.
func (s *Server) Close() {
	s.closed.Do(func() {
		s.lifeMu.Lock()
		close(s.closing)
		s.lifeMu.Unlock()
		if s.httpSrv != nil {
			_ = s.httpSrv.Close()
		}
		s.wsMu.Lock()
		for c := range s.ws {
			_ = c.CloseNow()
		}
		s.wsMu.Unlock()
		if s.httpSrv != nil {
			<-s.served
		}
		s.handlers.Wait()
		if s.log != nil {
			s.log.Info("Server stopped")
		}
		s.release()
	})
}

func (s *Server) release() {
	s.dbMu.Lock()
	if s.db != nil {
		_ = s.db.Close()
		s.db = nil
	}
	s.dbMu.Unlock()
	if s.logFile != nil {
		_ = s.logFile.Close()
	}
}

// Options returns the options the server was started with, its defaults
// filled in (Era, Version, Host), as a restart on the same state would
// pass them again.
func (s *Server) Options() Options { return s.opts }

// CookieName is the session cookie name this instance sets.
func (s *Server) CookieName() string { return s.cookieName }

// Client returns an HTTP client that does not follow redirects.
func (s *Server) Client() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// SetFaults switches faults at run time (MigrationFails and SlowStart only
// matter at start).
func (s *Server) SetFaults(f Faults) {
	s.faultsMu.Lock()
	s.faults = f
	s.faultsMu.Unlock()
}

func (s *Server) currentFaults() Faults {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	return s.faults
}

// Mint creates a one-time client credential through the same code path as
// the fake CLI's `auth pairing create` (migrations, then the insert), except
// that it waits out a lock held by the server instead of failing with
// SQLITE_BUSY as an old CLI would; ttl 0 means DefaultPairingTTL.
func (s *Server) Mint(ttl time.Duration) (string, error) {
	link, err := createPairing(context.Background(), s.BaseDir, s.Era, PairingOptions{TTL: ttl, Now: s.now}, true)
	if err != nil {
		return "", err
	}
	return link.Credential, nil
}

// WipeSessions deletes every session and pairing link, as migration 31 does
// to a live instance: every existing cookie reads authenticated:false.
func (s *Server) WipeSessions() error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db == nil {
		return errors.New("t3test: server closed")
	}
	for _, q := range []string{"DELETE FROM auth_sessions", "DELETE FROM auth_pairing_links"} {
		if err := execSQL(s.db, q); err != nil {
			return &PersistenceSqlError{Op: "wipe sessions", Err: err}
		}
	}
	return nil
}

// Exchanges is how many exchange requests (either route name this build
// serves) the server has answered, whatever the verdict.
func (s *Server) Exchanges() int { return int(s.exchanges.Load()) }

// SessionChecks is how many GET /api/auth/session requests it has answered.
func (s *Server) SessionChecks() int { return int(s.sessionChecks.Load()) }

// WebSockets is how many WebSocket connections it has accepted.
func (s *Server) WebSockets() int { return int(s.wsOpened.Load()) }
