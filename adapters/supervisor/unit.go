package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/t3fleet/t3fleet/rollout"
)

// unit is one configured instance and its current process, if any.
type unit struct {
	spec UnitSpec
	opts Options
	log  *slog.Logger
	op   chan struct{} // holds a token while a start/stop/restart runs

	mu    sync.Mutex
	state string
	since time.Time
	proc  *process // nil when nothing runs
}

// process is one run of a unit's command.
type process struct {
	cmd      *exec.Cmd
	pid      int
	done     chan struct{} // closed once reaped
	err      error         // Wait's result, set before done closes
	stopping bool          // guarded by unit.mu: we asked it to stop
}

func newUnit(spec UnitSpec, opts Options, log *slog.Logger) *unit {
	return &unit{spec: spec, opts: opts, log: log, op: make(chan struct{}, 1), state: StateInactive}
}

// do runs f as the unit's only operation, waiting for its turn within ctx.
func (x *unit) do(ctx context.Context, f func() error) error {
	select {
	case x.op <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for another operation: %w", x.spec.Name, ctx.Err())
	}
	defer func() { <-x.op }()
	return f()
}

func (x *unit) status() rollout.UnitStatus {
	x.mu.Lock()
	defer x.mu.Unlock()
	st := rollout.UnitStatus{State: x.state, Active: x.state == StateActive}
	if x.proc != nil {
		st.MainPID = x.proc.pid
	}
	if st.Active {
		st.ActiveSince = x.since
	}
	return st
}

func (x *unit) argv(ctx context.Context) ([]string, error) {
	argv := slices.Clone(x.spec.Argv)
	if x.spec.Command != nil {
		var err error
		if argv, err = x.spec.Command(ctx); err != nil {
			return nil, err
		}
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("empty command line")
	}
	return argv, nil
}

// start runs the command unless a process runs already, then waits for
// readiness. Called with the op token held.
func (x *unit) start(ctx context.Context) error {
	name := x.spec.Name
	x.mu.Lock()
	running := x.proc != nil
	x.mu.Unlock()
	if running {
		return nil
	}
	began := time.Now()
	argv, err := x.argv(ctx)
	if err != nil {
		x.setState(StateFailed)
		return fmt.Errorf("start %s: command: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), x.spec.Env...)
	cmd.Dir = x.spec.Dir
	if x.spec.LogFile != "" {
		f, err := os.OpenFile(x.spec.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			x.setState(StateFailed)
			return fmt.Errorf("start %s: log: %w", name, err)
		}
		// The child holds its own descriptor once started.
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	// Its own process group, so a stop reaches whatever it spawned; and
	// SIGTERM if the supervisor itself dies, so nothing outlives it. (Linux
	// sends it when the forking thread ends: only a goroutine that locked
	// its thread and exits would trigger it early.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		x.setState(StateFailed)
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	x.mu.Lock()
	x.proc = p
	if x.spec.Ready == nil {
		x.state, x.since = StateActive, time.Now()
	} else {
		x.state = StateActivating
	}
	x.mu.Unlock()
	go x.reap(p)

	if x.spec.Ready != nil {
		if err := x.waitReady(ctx, p); err != nil {
			x.terminate(context.WithoutCancel(ctx), p)
			x.setState(StateFailed)
			return fmt.Errorf("start %s: %w", name, err)
		}
		x.mu.Lock()
		if x.proc == p {
			x.state, x.since = StateActive, time.Now()
		}
		x.mu.Unlock()
	}
	x.log.Info("unit started", LogKeyUnit, name, LogKeyPID, p.pid, LogKeyTook, time.Since(began))
	return nil
}

func (x *unit) setState(s string) {
	x.mu.Lock()
	x.state = s
	x.mu.Unlock()
}

// reap waits for p and records how it ended.
func (x *unit) reap(p *process) {
	err := p.cmd.Wait()
	// Like systemd's control-group kill mode: nothing of the unit outlives
	// its main process.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	x.mu.Lock()
	p.err = err
	if x.proc == p {
		x.proc = nil
		x.since = time.Time{}
		if p.stopping {
			x.state = StateInactive
		} else {
			x.state = StateFailed
			x.log.Warn("unit exited on its own", LogKeyUnit, x.spec.Name, LogKeyPID, p.pid, LogKeyErr, err)
		}
	}
	// Closed before the lock is released: whoever sees the unit failed
	// also finds p.done closed (waitReady tells a stale answer by it).
	close(p.done)
	x.mu.Unlock()
}

func (x *unit) waitReady(parent context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(parent, x.opts.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(x.opts.ReadyInterval)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%w: %v", ErrExited, p.err)
		default:
		}
		// Each check is bounded too: a listener that accepts and never
		// answers must not eat the whole timeout in one try.
		cctx, ccancel := context.WithTimeout(ctx, x.opts.ReadyCheckTimeout)
		last = x.spec.Ready(cctx)
		ccancel()
		if last == nil {
			select {
			case <-p.done:
				// Something else answered (a stale process on the port): not
				// the build's doing, whatever made this one exit.
				return fmt.Errorf("%w: %v; %w: the readiness check was answered all the same", ErrExited, p.err, rollout.ErrWrongBuild)
			default:
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w: %v", ErrExited, p.err)
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return fmt.Errorf("waiting for readiness: %w (last check: %v)", err, last)
			}
			return fmt.Errorf("%w after %s: %v", ErrNotReady, x.opts.ReadyTimeout, last)
		case <-tick.C:
		}
	}
}

// stop stops the current process, if any. Called with the op token held.
func (x *unit) stop(ctx context.Context) error {
	x.mu.Lock()
	p := x.proc
	if p == nil {
		x.state = StateInactive
		x.mu.Unlock()
		return nil
	}
	x.mu.Unlock()
	x.terminate(ctx, p)
	return nil
}

// terminate sends SIGTERM to p's group, SIGKILL after StopTimeout (or
// once ctx is done), and returns once p is reaped.
func (x *unit) terminate(ctx context.Context, p *process) {
	began := time.Now()
	x.mu.Lock()
	p.stopping = true
	x.mu.Unlock()
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	timer := time.NewTimer(x.opts.StopTimeout)
	defer timer.Stop()
	killed := false
	select {
	case <-p.done:
	case <-timer.C:
		killed = true
	case <-ctx.Done():
		killed = true
	}
	if killed {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
	}
	x.log.Info("unit stopped", LogKeyUnit, x.spec.Name, LogKeyPID, p.pid, LogKeyTook, time.Since(began), "killed", killed)
}
