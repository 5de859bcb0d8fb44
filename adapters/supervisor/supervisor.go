package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
)

// Defaults for Options.
const (
	DefaultStopTimeout   = 10 * time.Second
	DefaultReadyTimeout  = 30 * time.Second
	DefaultReadyInterval = 50 * time.Millisecond
	// DefaultReadyCheckTimeout bounds one readiness check.
	DefaultReadyCheckTimeout = 2 * time.Second
)

// States a unit reports, systemd's words.
const (
	StateActive     = "active"
	StateActivating = "activating"
	StateInactive   = "inactive"
	StateFailed     = "failed"
)

// Log keys.
const (
	LogKeyUnit = "unit"
	LogKeyPID  = "pid"
	LogKeyTook = "took"
	LogKeyErr  = "err"
)

// Sentinel errors.
var (
	// ErrUnknownUnit: the unit is not one the Supervisor was configured
	// with. It wraps rollout.ErrUnitManager (no build's doing).
	ErrUnknownUnit = fmt.Errorf("%w: unknown unit", rollout.ErrUnitManager)
	// ErrClosed: the Supervisor was closed. It wraps rollout.ErrUnitManager.
	ErrClosed = fmt.Errorf("%w: supervisor closed", rollout.ErrUnitManager)
	// ErrExited: the process exited while Start waited for it to be ready.
	ErrExited = errors.New("process exited during start")
	// ErrNotReady: the readiness check did not pass in time; the process
	// was stopped.
	ErrNotReady = errors.New("not ready in time")
)

// UnitSpec is one supervised instance.
type UnitSpec struct {
	// User is the OS user the instance serves; checked with
	// t3fleet.ValidOSUser.
	User string
	// Name is the unit's name; "t3-serve@<User>.service" when empty, as
	// under systemd.
	Name string
	// Argv is the command line, used when Command is nil. A path that is a
	// link (e.g. <prefix>/current/bin/t3) is resolved at each start.
	Argv []string
	// Command, when set, builds the command line at each start, so a
	// restart runs whatever is current then.
	Command func(ctx context.Context) ([]string, error)
	// Env is added to the supervisor's own environment (later entries win).
	Env []string
	// Dir is the working directory; the supervisor's when empty.
	Dir string
	// LogFile receives stdout and stderr, appended; discarded when empty.
	LogFile string
	// Ready, when set, is polled after the process starts until it returns
	// nil; Start returns only then. See ReadyHTTP and ReadyTCP.
	Ready func(ctx context.Context) error
}

// Options configures a Supervisor. The zero value works.
type Options struct {
	// StopTimeout is how long a process has between SIGTERM and SIGKILL.
	StopTimeout time.Duration
	// ReadyTimeout bounds a start's readiness wait.
	ReadyTimeout time.Duration
	// ReadyInterval is the pause between readiness checks.
	ReadyInterval time.Duration
	// ReadyCheckTimeout bounds one readiness check.
	ReadyCheckTimeout time.Duration
	// Logger receives one line per start, stop and unexpected exit; nil
	// discards.
	Logger *slog.Logger
}

// Supervisor is a rollout.UnitManager that runs each unit as a plain child
// process: for machines without systemd, the demo and end-to-end tests. It
// is safe for concurrent use; operations on one unit are serialised.
type Supervisor struct {
	opts  Options
	log   *slog.Logger
	mu    sync.Mutex
	units []*unit // in configuration order
	shut  bool
}

var _ rollout.UnitManager = (*Supervisor)(nil)

// New returns a Supervisor for units; nothing is started.
func New(units []UnitSpec, opts Options) (*Supervisor, error) {
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.ReadyInterval <= 0 {
		opts.ReadyInterval = DefaultReadyInterval
	}
	if opts.ReadyCheckTimeout <= 0 {
		opts.ReadyCheckTimeout = DefaultReadyCheckTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Supervisor{opts: opts, log: log}
	for _, spec := range units {
		if err := s.Add(spec); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Add configures one more unit; it is not started.
func (s *Supervisor) Add(spec UnitSpec) error {
	if err := t3fleet.ValidOSUser(spec.User); err != nil {
		return fmt.Errorf("add unit: %w", err)
	}
	if spec.Name == "" {
		spec.Name = "t3-serve@" + spec.User + ".service"
	}
	if spec.Command == nil && len(spec.Argv) == 0 {
		return fmt.Errorf("add unit %s: no Argv and no Command", spec.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return ErrClosed
	}
	for _, u := range s.units {
		if u.spec.Name == spec.Name || u.spec.User == spec.User {
			return fmt.Errorf("add unit %s: user %s or name already configured", spec.Name, spec.User)
		}
	}
	s.units = append(s.units, newUnit(spec, s.opts, s.log))
	return nil
}

// lookup finds the configured unit for u, by User (validated first) or by
// Name; when both are set they must agree.
func (s *Supervisor) lookup(u rollout.Unit) (*unit, error) {
	if u.User != "" {
		if err := t3fleet.ValidOSUser(u.User); err != nil {
			return nil, err
		}
	}
	if u.User == "" && u.Name == "" {
		return nil, fmt.Errorf("%w: no name and no user", ErrUnknownUnit)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return nil, ErrClosed
	}
	for _, x := range s.units {
		if (u.User == "" || x.spec.User == u.User) && (u.Name == "" || x.spec.Name == u.Name) {
			return x, nil
		}
	}
	return nil, fmt.Errorf("%w: name %q user %q", ErrUnknownUnit, u.Name, u.User)
}

// Units lists every configured unit, running or not, in configuration
// order. Fields carry "ActiveState".
func (s *Supervisor) Units(ctx context.Context) ([]rollout.Unit, error) {
	s.mu.Lock()
	units := append([]*unit(nil), s.units...)
	shut := s.shut
	s.mu.Unlock()
	if shut {
		return nil, ErrClosed
	}
	out := make([]rollout.Unit, 0, len(units))
	for _, u := range units {
		out = append(out, rollout.Unit{
			Name:   u.spec.Name,
			User:   u.spec.User,
			Fields: map[string]string{"ActiveState": u.status().State},
		})
	}
	return out, nil
}

// Start starts the unit's process (a no-op when it runs) and, when the unit
// has a Ready check, waits for it.
func (s *Supervisor) Start(ctx context.Context, u rollout.Unit) error {
	x, err := s.lookup(u)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return x.do(ctx, func() error { return x.start(ctx) })
}

// Stop sends SIGTERM to the unit's process group, SIGKILL after
// StopTimeout (at once if ctx ends first), and waits for the process to be
// gone. Stopping a stopped
// unit is not an error; a failed unit becomes inactive.
func (s *Supervisor) Stop(ctx context.Context, u rollout.Unit) error {
	x, err := s.lookup(u)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return x.do(ctx, func() error { return x.stop(ctx) })
}

// Restart stops then starts the unit, building its command line afresh.
func (s *Supervisor) Restart(ctx context.Context, u rollout.Unit) error {
	x, err := s.lookup(u)
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return x.do(ctx, func() error {
		if err := x.stop(ctx); err != nil {
			return err
		}
		return x.start(ctx)
	})
}

// Status reports the unit's state, main PID and since when it is active.
func (s *Supervisor) Status(ctx context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
	x, err := s.lookup(u)
	if err != nil {
		return rollout.UnitStatus{}, fmt.Errorf("status: %w", err)
	}
	return x.status(), nil
}

// Close stops every unit (concurrently) and refuses further calls.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return nil
	}
	s.shut = true
	units := append([]*unit(nil), s.units...)
	s.mu.Unlock()
	errs := make([]error, len(units))
	var wg sync.WaitGroup
	for i, x := range units {
		wg.Go(func() {
			ctx := context.Background()
			errs[i] = x.do(ctx, func() error { return x.stop(ctx) })
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
