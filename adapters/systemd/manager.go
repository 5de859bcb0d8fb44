package systemd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
)

// Defaults for Options.
const (
	// DefaultTemplate is the seed's unit template: one t3-serve@<user>.service
	// per OS user.
	DefaultTemplate = "t3-serve@.service"
	// DefaultJobMode is the job mode of start, stop and restart jobs, the one
	// systemctl uses.
	DefaultJobMode = "replace"
	// DefaultConnCheckInterval is how often a job's wait checks that the
	// connection still stands.
	DefaultConnCheckInterval = time.Second
)

// Log keys.
const (
	LogKeyOp     = "op"
	LogKeyUnit   = "unit"
	LogKeyResult = "result"
	LogKeyTook   = "took"
)

// Options configures a Manager. The zero value manages DefaultTemplate.
type Options struct {
	// Template is the template unit whose instances are the fleet, e.g.
	// "t3-serve@.service" (the default). Instance names are OS users.
	Template string
	// JobMode is passed with every job; DefaultJobMode when empty.
	JobMode string
	// KeepFailed leaves a failed unit's failed state (and start-rate
	// counter) alone on Start and Restart. By default it is reset first,
	// as an operator would with `systemctl reset-failed`, so a unit that a
	// bad build crash-looped into its start limit can still be restarted
	// onto last-good.
	KeepFailed bool
	// Logger receives one line per job; nil discards.
	Logger *slog.Logger
	// ConnCheckInterval is how often a job's wait checks that the
	// connection still stands; DefaultConnCheckInterval when zero.
	ConnCheckInterval time.Duration
}

// Manager is a rollout.UnitManager over a systemd manager's D-Bus API: the
// system manager, a user manager, or any manager reached on its private
// socket. It is safe for concurrent use.
type Manager struct {
	c      Client
	prefix string // "t3-serve@"
	suffix string // ".service"
	mode   string
	keep   bool
	check  time.Duration // ConnCheckInterval
	log    *slog.Logger
}

var _ rollout.UnitManager = (*Manager)(nil)

// ErrBadTemplate is returned by New for a template that is not of the form
// "name@.type".
var ErrBadTemplate = errors.New("not a template unit name")

// ErrNotInstance is returned for a unit that is not an instance of the
// Manager's template, or whose Name and User disagree.
var ErrNotInstance = errors.New("not an instance of the template")

// ErrDisconnected is returned when the connection to the manager is lost
// while a job runs: its result is unknown, and will never come on this
// connection.
var ErrDisconnected = errors.New("connection to the manager lost")

// ErrUnitNotFound is returned by Status when systemd has no such unit file.
var ErrUnitNotFound = errors.New("unit not found")

// New returns a Manager over c. The Manager owns c: Close closes it.
func New(c Client, opts Options) (*Manager, error) {
	tpl := opts.Template
	if tpl == "" {
		tpl = DefaultTemplate
	}
	prefix, typ, ok := strings.Cut(tpl, "@.")
	if !ok || prefix == "" || typ == "" || strings.ContainsAny(prefix, "@*?[]/") || strings.ContainsAny(typ, "@.*?[]/") {
		return nil, fmt.Errorf("template %q: %w", tpl, ErrBadTemplate)
	}
	mode := opts.JobMode
	if mode == "" {
		mode = DefaultJobMode
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	check := opts.ConnCheckInterval
	if check <= 0 {
		check = DefaultConnCheckInterval
	}
	return &Manager{c: c, prefix: prefix + "@", suffix: "." + typ, mode: mode, keep: opts.KeepFailed, check: check, log: log}, nil
}

// Close closes the D-Bus connection.
func (m *Manager) Close() error {
	m.c.Close()
	return nil
}

// UnitName returns the instance of the template for an OS user, e.g.
// "t3-serve@emil.service". The user is checked with t3fleet.ValidOSUser.
func (m *Manager) UnitName(user string) (string, error) {
	if err := t3fleet.ValidOSUser(user); err != nil {
		return "", err
	}
	return m.prefix + user + m.suffix, nil
}

// userOf returns the instance part of an instance name of the template.
func (m *Manager) userOf(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, m.prefix)
	if !ok {
		return "", false
	}
	user, ok := strings.CutSuffix(rest, m.suffix)
	return user, ok && user != ""
}

// resolve turns a rollout.Unit into a unit name, validating the user before
// anything reaches D-Bus.
func (m *Manager) resolve(u rollout.Unit) (string, error) {
	if u.User == "" {
		user, ok := m.userOf(u.Name)
		if !ok {
			return "", fmt.Errorf("unit %q: %w %s%s", u.Name, ErrNotInstance, m.prefix, m.suffix)
		}
		return m.UnitName(user)
	}
	name, err := m.UnitName(u.User)
	if err != nil {
		return "", err
	}
	if u.Name != "" && u.Name != name {
		return "", fmt.Errorf("unit %q for user %q: %w (want %q)", u.Name, u.User, ErrNotInstance, name)
	}
	return name, nil
}

// Units lists the loaded instances of the template (running, failed, or
// stopped but still loaded), sorted by name. Fields carry "ActiveState" and
// "SubState". Instances whose name is not a valid OS user are skipped.
func (m *Manager) Units(ctx context.Context) ([]rollout.Unit, error) {
	pattern := m.prefix + "*" + m.suffix
	list, err := m.c.ListUnitsByPatternsContext(ctx, nil, []string{pattern})
	if err != nil {
		return nil, managerFault(fmt.Errorf("list units %s: %w", pattern, err))
	}
	var out []rollout.Unit
	for _, st := range list {
		if st.LoadState != "loaded" {
			continue
		}
		user, ok := m.userOf(st.Name)
		if !ok {
			continue
		}
		if err := t3fleet.ValidOSUser(user); err != nil {
			m.log.Warn("skipping unit with an invalid user", LogKeyUnit, st.Name, "err", err)
			continue
		}
		out = append(out, rollout.Unit{
			Name:   st.Name,
			User:   user,
			Fields: map[string]string{"ActiveState": st.ActiveState, "SubState": st.SubState},
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type jobFunc func(ctx context.Context, name, mode string, ch chan<- string) (int, error)

// Start starts the unit and waits for its job; an error unless the job is
// "done" and the unit did not end up failed. A failed unit is reset first
// unless Options.KeepFailed.
func (m *Manager) Start(ctx context.Context, u rollout.Unit) error {
	return managerFault(m.job(ctx, "start", u, m.c.StartUnitContext))
}

// Stop stops the unit and waits for its job.
func (m *Manager) Stop(ctx context.Context, u rollout.Unit) error {
	return managerFault(m.job(ctx, "stop", u, m.c.StopUnitContext))
}

// Restart restarts (or starts) the unit and waits for its job, like Start.
func (m *Manager) Restart(ctx context.Context, u rollout.Unit) error {
	return managerFault(m.job(ctx, "restart", u, m.c.RestartUnitContext))
}

// managerFault marks an error that is not a job's own result (the bus, the
// manager, an unknown unit) as rollout.ErrUnitManager, so that the engine
// does not blame the build for it.
func managerFault(err error) error {
	if err == nil || errors.Is(err, ErrJobFailed) {
		return err
	}
	return fmt.Errorf("%w: %w", rollout.ErrUnitManager, err)
}

func (m *Manager) job(ctx context.Context, op string, u rollout.Unit, call jobFunc) error {
	name, err := m.resolve(u)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	began := time.Now()
	if op != "stop" && !m.keep {
		if err := m.resetFailed(ctx, name); err != nil {
			return fmt.Errorf("%s %s: %w", op, name, err)
		}
	}
	// Buffered: go-systemd sends the result while holding its job lock, and
	// nobody reads once ctx is done.
	ch := make(chan string, 1)
	if _, err := call(ctx, name, m.mode, ch); err != nil {
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	result, err := m.wait(ctx, ch)
	if err != nil {
		return fmt.Errorf("%s %s: waiting for the job: %w", op, name, err)
	}
	m.log.Info("unit job", LogKeyOp, op, LogKeyUnit, name, LogKeyResult, result, LogKeyTook, time.Since(began))
	if result != "done" {
		return &JobError{Op: op, Unit: name, Result: result}
	}
	if op == "stop" {
		return nil
	}
	// "done" says the unit got there once, not that it runs: a failed
	// condition leaves it inactive, a process that died at once leaves it
	// failed, stopping, or waiting for its Restart=; catching it here
	// saves the caller a verification timeout.
	props, err := m.c.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return fmt.Errorf("%s %s: reading state after the job: %w", op, name, err)
	}
	st, _ := props["ActiveState"].(string)
	sub, _ := props["SubState"].(string)
	if !running(st, sub) {
		return &JobError{Op: op, Unit: name, Result: result, State: st, SubState: sub}
	}
	return nil
}

// running reports whether a unit whose start job is done still runs what
// it started. "activating" is a new start on its way, unless the unit waits
// to restart a process that died (auto-restart, auto-restart-queued).
func running(active, sub string) bool {
	switch active {
	case "active", "reloading":
		return true
	case "activating":
		return !strings.HasPrefix(sub, "auto-restart")
	}
	return false
}

// wait returns the job's result from ch, or an error once ctx ends or the
// connection is lost (the result, a signal, would then never come).
func (m *Manager) wait(ctx context.Context, ch <-chan string) (string, error) {
	tick := time.NewTicker(m.check)
	defer tick.Stop()
	for {
		select {
		case result := <-ch:
			return result, nil
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
			if !m.c.Connected() {
				// The result may have come just before the loss.
				select {
				case result := <-ch:
					return result, nil
				default:
					return "", ErrDisconnected
				}
			}
		}
	}
}

// resetFailed clears a failed unit's state and start-rate counter.
func (m *Manager) resetFailed(ctx context.Context, name string) error {
	props, err := m.c.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return fmt.Errorf("reading state: %w", err)
	}
	if st, _ := props["ActiveState"].(string); st != "failed" {
		return nil
	}
	if err := m.c.ResetFailedUnitContext(ctx, name); err != nil {
		return fmt.Errorf("reset-failed: %w", err)
	}
	m.log.Info("unit job", LogKeyOp, "reset-failed", LogKeyUnit, name)
	return nil
}

// Status reads ActiveState, MainPID and ActiveEnterTimestamp. ActiveSince is
// set only while the unit is active (systemd forgets it once a stopped unit
// is unloaded).
func (m *Manager) Status(ctx context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
	name, err := m.resolve(u)
	if err != nil {
		return rollout.UnitStatus{}, fmt.Errorf("status: %w", err)
	}
	props, err := m.c.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return rollout.UnitStatus{}, managerFault(fmt.Errorf("status %s: %w", name, err))
	}
	if ls, _ := props["LoadState"].(string); ls == "not-found" {
		return rollout.UnitStatus{State: "inactive"}, managerFault(fmt.Errorf("status %s: %w", name, ErrUnitNotFound))
	}
	st := rollout.UnitStatus{}
	st.State, _ = props["ActiveState"].(string)
	st.Active = st.State == "active" || st.State == "reloading"
	if st.Active {
		if us, ok := props["ActiveEnterTimestamp"].(uint64); ok && us > 0 {
			st.ActiveSince = time.UnixMicro(int64(us))
		}
	}
	if strings.HasSuffix(name, ".service") {
		sprops, err := m.c.GetUnitTypePropertiesContext(ctx, name, "Service")
		if err != nil {
			return rollout.UnitStatus{}, managerFault(fmt.Errorf("status %s: %w", name, err))
		}
		if pid, ok := sprops["MainPID"].(uint32); ok {
			st.MainPID = int(pid)
		}
	}
	return st, nil
}

// ControlGroup returns the unit's cgroup (its ControlGroup property, e.g.
// "/system.slice/system-t3\x2dserve.slice/t3-serve@emil.service"): it holds
// every process the unit started, re-parented or not, and stopping the unit
// kills them all. The path is relative to the manager's cgroup namespace.
// It is "" for a unit that is not running (systemd removes the cgroup) and
// for a unit type that runs no processes (a target, a timer).
func (m *Manager) ControlGroup(ctx context.Context, u rollout.Unit) (string, error) {
	name, err := m.resolve(u)
	if err != nil {
		return "", managerFault(fmt.Errorf("control group: %w", err))
	}
	iface, ok := cgroupInterface(m.suffix)
	if !ok {
		return "", nil
	}
	// The property lives on the type's interface (Service, Socket, ...),
	// not on Unit; the same call as Status's MainPID, so Client needs no
	// new method.
	props, err := m.c.GetUnitTypePropertiesContext(ctx, name, iface)
	if err != nil {
		return "", managerFault(fmt.Errorf("control group %s: %w", name, err))
	}
	cg, _ := props["ControlGroup"].(string)
	return cg, nil
}

// cgroupInterface returns the D-Bus interface, named after the unit type,
// that carries ControlGroup for the types that run processes.
func cgroupInterface(suffix string) (string, bool) {
	switch suffix {
	case ".service":
		return "Service", true
	case ".socket":
		return "Socket", true
	case ".mount":
		return "Mount", true
	case ".swap":
		return "Swap", true
	case ".scope":
		return "Scope", true
	case ".slice":
		return "Slice", true
	}
	return "", false
}
