package npmtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/t3fleet/t3fleet/internal/realtest"
)

// Environment variables the package reads.
const (
	// EnvVerdaccio names the verdaccio executable to use.
	EnvVerdaccio = "T3FLEET_VERDACCIO"
	// EnvRequireReal set to "1" turns a missing Verdaccio into a test failure.
	EnvRequireReal = realtest.Env
	// DefaultVerdaccioPath is where .ci/run installs Verdaccio 4.
	DefaultVerdaccioPath = "/opt/verdaccio/node_modules/.bin/verdaccio"
)

// Defaults for Options.
const (
	DefaultReadyTimeout = 30 * time.Second
	DefaultStopTimeout  = 5 * time.Second
	DefaultNPM          = "npm"
	startAttempts       = 3 // a free port can be taken between probe and bind
)

// ErrNoVerdaccio is returned by FindVerdaccio when no executable is found.
var ErrNoVerdaccio = errors.New("verdaccio not found")

// Options configure Start; the zero value finds Verdaccio with FindVerdaccio.
type Options struct {
	Verdaccio    string        // executable; empty = FindVerdaccio()
	NPM          string        // npm executable for publishing; default DefaultNPM
	ReadyTimeout time.Duration // default DefaultReadyTimeout
	Logger       *slog.Logger  // nil = discard; logs each start and npm call with its time
}

// Registry is a running Verdaccio on 127.0.0.1 with a private npm
// environment pointing at it.
type Registry struct {
	// URL is the registry's base URL with a trailing slash,
	// e.g. "http://127.0.0.1:41234/".
	URL  string
	Port int
	// Dir holds the config, storage, npmrc, npm cache and global prefix.
	Dir string

	opts    Options
	logger  *slog.Logger
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
	stop    sync.Once
}

// FindVerdaccio returns the verdaccio executable: $T3FLEET_VERDACCIO, then
// `verdaccio` on PATH, then DefaultVerdaccioPath.
func FindVerdaccio() (string, error) {
	if p := os.Getenv(EnvVerdaccio); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrNoVerdaccio, EnvVerdaccio, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("verdaccio"); err == nil {
		return p, nil
	}
	if _, err := os.Stat(DefaultVerdaccioPath); err == nil {
		return DefaultVerdaccioPath, nil
	}
	return "", fmt.Errorf("%w: set %s, put verdaccio on PATH or install it at %s", ErrNoVerdaccio, EnvVerdaccio, DefaultVerdaccioPath)
}

// Start runs Verdaccio with storage under dir (no uplink, anonymous
// publish, web UI off) on a free loopback port and returns once GET /-/ping
// answers. Stop it with Close. It does not need a testing.T, so a demo can
// use it too.
func Start(ctx context.Context, dir string, opts Options) (*Registry, error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.NPM == "" {
		opts.NPM = DefaultNPM
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bin := opts.Verdaccio
	if bin == "" {
		var err error
		if bin, err = FindVerdaccio(); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		r, err := start(ctx, bin, dir, opts, logger)
		if err == nil {
			return r, nil
		}
		lastErr = err
		if ctx.Err() != nil || !errors.Is(err, errExitedEarly) {
			break
		}
	}
	return nil, lastErr
}

var errExitedEarly = errors.New("verdaccio exited before it was ready")

func start(ctx context.Context, bin, dir string, opts Options, logger *slog.Logger) (*Registry, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("start verdaccio: %w", err)
	}
	r := &Registry{
		URL: fmt.Sprintf("http://127.0.0.1:%d/", port), Port: port, Dir: dir,
		opts: opts, logger: logger, done: make(chan struct{}),
	}
	for _, d := range []string{r.path("storage"), r.path("cache"), r.path("prefix"), r.path("packages")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("start verdaccio: %w", err)
		}
	}
	if err := os.WriteFile(r.path("config.yaml"), []byte(r.config()), 0o644); err != nil {
		return nil, fmt.Errorf("start verdaccio: %w", err)
	}
	if err := os.WriteFile(r.path("npmrc"), []byte(r.npmrc()), 0o600); err != nil {
		return nil, fmt.Errorf("start verdaccio: %w", err)
	}
	logFile, err := os.Create(r.path("verdaccio.log"))
	if err != nil {
		return nil, fmt.Errorf("start verdaccio: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	// Not CommandContext: the server outlives Start's ctx; Close stops it.
	cmd := exec.Command(bin, "--config", r.path("config.yaml"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(cleanEnv(), "NODE_NO_WARNINGS=1")
	// Its own process group, so Close can signal node and any children.
	cmd.SysProcAttr = sysProcAttr()
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start verdaccio %s: %w", bin, err)
	}
	r.cmd = cmd
	go func() {
		r.waitErr = cmd.Wait()
		close(r.done)
	}()
	if err := r.waitReady(ctx); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("start verdaccio on port %d: %w; log:\n%s", port, err, r.Log())
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "npmtest: verdaccio ready",
		slog.String("url", r.URL), slog.Duration("took", time.Since(began)))
	return r, nil
}

func (r *Registry) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.ReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"-/ping", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.done:
			return fmt.Errorf("%w: %v", errExitedEarly, r.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (r *Registry) path(name string) string { return filepath.Join(r.Dir, name) }

func (r *Registry) config() string {
	return fmt.Sprintf(`storage: %s
listen: 127.0.0.1:%d
web: { enable: false }
auth: { htpasswd: { file: %s, max_users: -1 } }
uplinks: {}
packages: { '**': { access: $all, publish: $all, unpublish: $all } }
log: { type: stdout, format: pretty, level: warn }
publish: { allow_offline: true }
`, strconv.Quote(r.path("storage")), r.Port, strconv.Quote(r.path("htpasswd")))
}

// Token is the dummy auth token written to the npmrc (publish needs one).
const Token = "dummy"

func (r *Registry) npmrc() string {
	return fmt.Sprintf("registry=%s\n//127.0.0.1:%d/:_authToken=%s\nupdate-notifier=false\nfund=false\naudit=false\n",
		r.URL, r.Port, Token)
}

// Env returns the variables that point npm at this registry and keep it off
// the machine's config, cache and global tree: NPM_CONFIG_USERCONFIG,
// NPM_CONFIG_CACHE, NPM_CONFIG_PREFIX, and NPM_CONFIG_REGISTRY (so a
// registry set in the caller's environment cannot win). Append it to
// os.Environ() (later entries win in os/exec); Environ also drops any other
// npm_config_* variable.
func (r *Registry) Env() []string {
	return []string{
		"NPM_CONFIG_REGISTRY=" + r.URL,
		"NPM_CONFIG_USERCONFIG=" + r.path("npmrc"),
		"NPM_CONFIG_CACHE=" + r.path("cache"),
		"NPM_CONFIG_PREFIX=" + r.path("prefix"),
	}
}

// Environ returns os.Environ() without any npm_config_* variable, plus Env:
// a whole environment for exec.Cmd.Env.
func (r *Registry) Environ() []string { return append(cleanEnv(), r.Env()...) }

// NPMRC returns the path of the private npm user config.
func (r *Registry) NPMRC() string { return r.path("npmrc") }

// GlobalPrefix returns the private NPM_CONFIG_PREFIX directory.
func (r *Registry) GlobalPrefix() string { return r.path("prefix") }

// Log returns what Verdaccio has printed so far.
func (r *Registry) Log() string {
	b, _ := os.ReadFile(r.path("verdaccio.log"))
	return string(b)
}

// Close stops Verdaccio with SIGTERM (SIGKILL after DefaultStopTimeout) and
// waits for it. The data directory stays. Safe to call more than once.
func (r *Registry) Close() error {
	if r == nil || r.cmd == nil {
		return nil
	}
	r.stop.Do(func() {
		pgid := -r.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(DefaultStopTimeout):
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			<-r.done
		}
		r.logger.Info("npmtest: verdaccio stopped", "url", r.URL)
	})
	return nil
}

// Running reports whether the process has not exited.
func (r *Registry) Running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(strings.ToLower(kv), "npm_config_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
