package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/t3fleet/t3fleet"
)

// Defaults of WatchdogOptions.
const (
	// DefaultWatchdogDir holds the counters: on tmpfs, so they reset on boot.
	DefaultWatchdogDir         = "/run/t3-watchdog"
	DefaultWatchdogGrace       = 120 * time.Second
	DefaultWatchdogFailures    = 3
	DefaultWatchdogMaxRestarts = 3
	DefaultWatchdogWindow      = 30 * time.Minute
	DefaultProbeTimeout        = 5 * time.Second
	// WatchdogLabel is the label of the backups a watchdog restart takes.
	WatchdogLabel = "pre-watchdog"
)

// Events of the watchdog.
const (
	EventProbeFailed     EventKind = "probe-failed"
	EventProvisioning    EventKind = "provisioning" // the instance cannot be probed: not a wedge
	EventWatchdogRestart EventKind = "watchdog-restart"
	// EventWatchdogExhausted is the seed's alert string: the unit hit the
	// restart cap and the watchdog stands down for it.
	EventWatchdogExhausted EventKind = "WATCHDOG-EXHAUSTED"
)

// ErrProvisioning is wrapped by a Prober that cannot probe an instance
// because the host lacks what it needs (no port in its env file): an
// operator's problem, never counted as a failed probe.
var ErrProvisioning = errors.New("provisioning problem")

// Prober checks that an instance answers, within ctx's deadline.
type Prober interface {
	Probe(ctx context.Context, m Member) error
}

// ProbeFunc adapts a function to Prober.
type ProbeFunc func(ctx context.Context, m Member) error

// Probe calls f.
func (f ProbeFunc) Probe(ctx context.Context, m Member) error { return f(ctx, m) }

// WatchdogOptions tune a Watchdog; the zero value works.
type WatchdogOptions struct {
	Dir          string        // counters; default DefaultWatchdogDir
	Grace        time.Duration // a unit up less than this is left alone; default DefaultWatchdogGrace, negative: none
	Failures     int           // consecutive failed probes before a restart; default DefaultWatchdogFailures
	MaxRestarts  int           // restarts allowed in Window; default DefaultWatchdogMaxRestarts
	Window       time.Duration // default DefaultWatchdogWindow
	ProbeTimeout time.Duration // default DefaultProbeTimeout
}

func (o WatchdogOptions) withDefaults() WatchdogOptions {
	if o.Dir == "" {
		o.Dir = DefaultWatchdogDir
	}
	if o.Grace == 0 {
		o.Grace = DefaultWatchdogGrace
	}
	if o.Failures <= 0 {
		o.Failures = DefaultWatchdogFailures
	}
	if o.MaxRestarts <= 0 {
		o.MaxRestarts = DefaultWatchdogMaxRestarts
	}
	if o.Window <= 0 {
		o.Window = DefaultWatchdogWindow
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = DefaultProbeTimeout
	}
	return o
}

// Watchdog restarts instances whose listener stopped answering. It ignores
// the freeze (it re-runs the installed build; a freeze is about versions)
// but takes the engine's lock, and restarts through Engine.Cycle.
type Watchdog struct {
	Engine *Engine
	Probe  Prober
	WatchdogOptions
}

// WatchdogAction is what a tick did with one unit.
type WatchdogAction string

// Actions of a tick.
const (
	WatchdogOK           WatchdogAction = "ok"
	WatchdogFailing      WatchdogAction = "failing" // failed probes, under the threshold
	WatchdogGrace        WatchdogAction = "grace"
	WatchdogInactive     WatchdogAction = "inactive"
	WatchdogProvisioning WatchdogAction = "provisioning"
	WatchdogRestarted    WatchdogAction = "restarted"
	WatchdogExhausted    WatchdogAction = "exhausted"
	WatchdogRecovered    WatchdogAction = "rolled-back"
)

// WatchdogUnit is one unit's line of a tick.
type WatchdogUnit struct {
	User     string
	Action   WatchdogAction
	Failures int
	Reason   string
}

// WatchdogResult is what one tick did.
type WatchdogResult struct {
	Locked bool   // another run held the lock: nothing done
	Reason string // why the tick stopped early
	Units  []WatchdogUnit
	Took   time.Duration
}

// Lines renders the tick for a log: one line per unit that is not OK, then
// a count. A reason may quote what a user's instance answered to the
// probe: t3fleet.Printable.
func (r WatchdogResult) Lines() []string {
	if r.Locked {
		return []string{"another run holds the lock: " + t3fleet.Printable(r.Reason)}
	}
	var out []string
	ok := 0
	for _, u := range r.Units {
		if u.Action == WatchdogOK {
			ok++ // a minute timer's log only names the units that need a look
			continue
		}
		l := fmt.Sprintf("watchdog %s: %s failures=%d", u.User, u.Action, u.Failures)
		if u.Reason != "" {
			l += " (" + t3fleet.Printable(u.Reason) + ")"
		}
		out = append(out, l)
	}
	out = append(out, fmt.Sprintf("watchdog: %d of %d answering", ok, len(r.Units)))
	if r.Reason != "" {
		out = append(out, "watchdog stopped: "+t3fleet.Printable(r.Reason))
	}
	return out
}

// Tick probes every running unit once and acts on the counters. A restart
// that fails has been recovered by Cycle (which freezes) and ends the tick
// with its error.
func (w *Watchdog) Tick(ctx context.Context) (WatchdogResult, error) {
	e := w.Engine
	start := e.now()
	var res WatchdogResult
	if w.Probe == nil {
		return res, fmt.Errorf("%w: Probe", ErrMissingDependency)
	}
	if err := e.check(); err != nil {
		return res, err
	}
	lock, busy, err := e.lockOrBusy(ctx, "watchdog")
	if busy != nil {
		return WatchdogResult{Locked: true, Reason: busy.Error()}, nil
	}
	if err != nil {
		return res, err
	}
	defer lock.Release()
	defer func() { res.Took = e.now().Sub(start) }()

	// A drain's or a watchdog's restart cut short is finished first.
	if user, _, err := e.finishCycle(ctx); err != nil {
		res.Reason = err.Error()
		return res, fmt.Errorf("watchdog: finish the restart of %s: %w", user, err)
	}
	// While a run's journal waits, the fleet is half way to its target and
	// only that run's rollback knows whom to put back: a unit restarted
	// now would move onto the target behind its back.
	if j, err := e.State().Journal(); err != nil {
		return res, err
	} else if j != nil {
		res.Reason = fmt.Sprintf("an unfinished run (%s -> %s, phase %s) waits for `updater run`; no unit is restarted until it is finished", j.Previous, j.Target, j.Phase)
		return res, nil
	}

	if err := os.MkdirAll(w.withDefaults().Dir, 0o755); err != nil {
		return res, fmt.Errorf("watchdog dir: %w", err)
	}
	// A unit that cannot be placed (say a bad line of the user map) is a
	// provisioning problem of its own: the others are still watched.
	fleet, unplaced, err := e.fleetEach(ctx)
	if err != nil {
		return res, err
	}
	for _, f := range unplaced {
		e.emit(ctx, Event{Kind: EventProvisioning, User: f.Unit.User, Unit: f.Unit.Name, Reason: f.Err.Error()})
		res.Units = append(res.Units, WatchdogUnit{User: f.Unit.User, Action: WatchdogProvisioning, Reason: f.Err.Error()})
	}
	for _, m := range fleet {
		u, err := w.tick1(ctx, m, fleet, len(unplaced))
		res.Units = append(res.Units, u)
		if err != nil {
			res.Reason = err.Error()
			return res, err
		}
	}
	return res, nil
}

// tick1 probes m and acts; unplaced counts the units this tick could not
// place (they may run any build).
func (w *Watchdog) tick1(ctx context.Context, m Member, fleet []Member, unplaced int) (WatchdogUnit, error) {
	e, o := w.Engine, w.withDefaults()
	user := m.Unit.User
	out := WatchdogUnit{User: user}
	c, err := w.Counters(user)
	if err != nil {
		return out, err
	}
	now := e.now()
	save := func(a WatchdogAction, reason string) (WatchdogUnit, error) {
		out.Action, out.Reason, out.Failures = a, reason, c.Failures
		return out, w.saveCounters(user, c)
	}
	us, err := e.Units.Status(ctx, m.Unit)
	if err != nil {
		return out, fmt.Errorf("status %s: %w", user, err)
	}
	if !us.Active {
		// Not running is the unit manager's business, not a wedge.
		c.Failures = 0
		return save(WatchdogInactive, orNone(us.State))
	}
	if o.Grace > 0 && !us.ActiveSince.IsZero() && now.Sub(us.ActiveSince) < o.Grace {
		c.Failures = 0
		return save(WatchdogGrace, "up "+now.Sub(us.ActiveSince).Round(time.Second).String())
	}
	pctx, cancel := context.WithTimeout(ctx, o.ProbeTimeout)
	perr := w.Probe.Probe(pctx, m)
	cancel()
	switch {
	case perr == nil:
		c.Failures, c.LastError = 0, ""
		return save(WatchdogOK, "")
	case errors.Is(perr, ErrProvisioning):
		e.emit(ctx, Event{Kind: EventProvisioning, User: user, Unit: m.Unit.Name, Reason: perr.Error()})
		return save(WatchdogProvisioning, perr.Error())
	}
	c.Failures++
	c.LastError = perr.Error()
	e.emit(ctx, Event{Kind: EventProbeFailed, User: user, Unit: m.Unit.Name,
		Reason: fmt.Sprintf("%d/%d", c.Failures, o.Failures), Err: perr})
	if c.Failures < o.Failures {
		return save(WatchdogFailing, perr.Error())
	}
	c.Restarts = slices.DeleteFunc(c.Restarts, func(t time.Time) bool { return now.Sub(t) >= o.Window })
	if len(c.Restarts) >= o.MaxRestarts {
		why := fmt.Sprintf("%d restarts in the last %s; standing down", len(c.Restarts), o.Window)
		if !c.Exhausted {
			e.emit(ctx, Event{Kind: EventWatchdogExhausted, User: user, Unit: m.Unit.Name, Reason: why, Err: perr})
			c.Exhausted = true
		}
		return save(WatchdogExhausted, why)
	}
	// Count the restart before acting, so a crash mid-restart still counts.
	c.Exhausted = false
	c.Restarts = append(c.Restarts, now)
	failures := c.Failures
	c.Failures = 0
	if _, err := save(WatchdogRestarted, ""); err != nil {
		return out, err
	}
	out.Failures = failures
	version := w.runningVersion(ctx, m)
	if err := e.State().RecordWatchdogRestart(WatchdogRestart{Time: now, Version: version, User: user,
		RolledOut: e.State().rolledOut(version)}); err != nil {
		return out, err
	}
	e.emit(ctx, Event{Kind: EventWatchdogRestart, User: user, Unit: m.Unit.Name, Version: version,
		Reason: fmt.Sprintf("%d failed probes: %v", failures, perr)})
	cyc, moving := w.cycleOptions(ctx, m, fleet, unplaced, version)
	others := slices.DeleteFunc(slices.Clone(fleet), func(o Member) bool { return o.Unit.Name == m.Unit.Name })
	if perr := e.checkPath(ctx, others, version, "the wedged unit "+user+" is restarted unverified, nothing frozen"); errors.Is(perr, ErrInterrupted) {
		out.Action, out.Reason = WatchdogRestarted, perr.Error()
		return out, fmt.Errorf("watchdog restart %s: %w", user, perr)
	} else if perr != nil {
		// Nobody else pairs through the dispatch either: a verification
		// after this restart could not pass, and its recovery would freeze
		// the fleet for the dispatch's fault. The wedged unit is restarted
		// all the same, unverified: on its own build nothing migrates; a
		// deferred unit moves to the active build, so it is backed up first.
		if moving {
			if err := w.backupBeforeMove(ctx, m, cyc); err != nil {
				out.Action, out.Reason = WatchdogRestarted, err.Error()
				return out, fmt.Errorf("watchdog restart %s: %w", user, errors.Join(perr, err))
			}
		}
		if err := e.Units.Restart(ctx, m.Unit); err != nil {
			perr = errors.Join(perr, fmt.Errorf("restart %s: %w", user, err))
		} else {
			e.emit(ctx, Event{Kind: EventRestarted, User: user, Unit: m.Unit.Name, Reason: "not verified: the verification path is broken"})
		}
		out.Action, out.Reason = WatchdogRestarted, "not verified: "+perr.Error()
		return out, fmt.Errorf("watchdog restart %s: %w", user, perr)
	}
	err = e.Cycle(ctx, m, cyc)
	switch {
	case !backupFailed(err):
	case moving:
		// The backup failed, and nothing was restarted: a wedged server may
		// be holding its database. This restart would migrate it (the unit
		// moves to the active build), so never without a backup: stopped,
		// the server lets go of it, and the backup is tried again.
		err = w.moveStopped(ctx, m, cyc, err)
	default:
		// The same build restarting migrates nothing: restart without a
		// backup rather than leave it wedged.
		e.emit(ctx, Event{Kind: EventBackupSkipped, User: user, Unit: m.Unit.Name, Version: version,
			Reason: "backup failed, restarting the same build without one", Err: err})
		err = w.restartWithoutBackup(ctx, m, cyc.Version, err)
	}
	if err == nil && moving {
		if cerr := e.State().ClearMarker(user); cerr != nil {
			return out, cerr
		}
		e.emit(ctx, Event{Kind: EventMigrated, User: user, Unit: m.Unit.Name, Version: cyc.Version, Reason: "restarted by the watchdog"})
	}
	if err != nil {
		out.Action, out.Reason = WatchdogRecovered, err.Error()
		return out, fmt.Errorf("watchdog restart %s: %w", user, err)
	}
	out.Reason = fmt.Sprintf("after %d failed probes", failures)
	return out, nil
}

// cycleOptions are the watchdog's Cycle for m, running version. A unit with
// a deferral marker runs an older build than the active one, and its
// restart moves it there (moving): its backup and any failure name the
// active build, and a failure goes back as a failed drain would.
func (w *Watchdog) cycleOptions(ctx context.Context, m Member, fleet []Member, unplaced int, version string) (o CycleOptions, moving bool) {
	e := w.Engine
	o = CycleOptions{Label: WatchdogLabel, Version: version}
	mk, err := e.State().Marker(m.Unit.User)
	if err == nil && mk == nil {
		return o, false
	}
	// A marker (or one that cannot be read): the unit may run an older build
	// than the active one. Only the instance itself saying it runs the
	// active build says it does not move (a wedged one says nothing, and
	// version, when it came from elsewhere, proves nothing).
	cur, cerr := e.Installer.Current(ctx)
	switch {
	case cerr == nil && cur != "":
	case mk != nil:
		cur = mk.Target
	default:
		cur = version
	}
	if vr, ok := e.Units.(VersionReporter); ok {
		if v, err := vr.RunningVersion(ctx, m.Unit); err == nil && v != "" && v == cur {
			return o, false
		}
	}
	lastGood, _ := e.State().LastGood()
	o.Version = cur
	o.RollbackTo, o.Note = e.drainRollbackTo(ctx, m, fleet, unplaced, lastGood, cur)
	return o, true
}

// backupFailed says whether a Cycle's error is its backup's: nothing was
// restarted.
func backupFailed(err error) bool {
	return err != nil && !errors.Is(err, ErrRolledBack) && !errors.Is(err, ErrRollbackFailed) && !errors.Is(err, ErrCrashed) &&
		!noVerdict(err)
}

// moveStopped stops m and runs its Cycle again; if the backup still fails,
// the unit is left stopped, its database as it was.
func (w *Watchdog) moveStopped(ctx context.Context, m Member, cyc CycleOptions, backupErr error) error {
	e := w.Engine
	if err := e.Units.Stop(ctx, m.Unit); err != nil {
		return fmt.Errorf("stop %s to back it up (%v): %w", m.Unit.User, backupErr, err)
	}
	err := e.Cycle(ctx, m, cyc)
	if backupFailed(err) {
		return leftStopped(m, cyc, err)
	}
	return err
}

// backupBeforeMove backs up m, which a restart moves to the active build; if
// that fails while it runs, stopped (which lets go of its database). If it
// fails stopped too, m is left stopped, its database as it was.
func (w *Watchdog) backupBeforeMove(ctx context.Context, m Member, cyc CycleOptions) error {
	e := w.Engine
	backup := func() error {
		s, err := e.Backups.Backup(ctx, m.Target(cyc.Version), WatchdogLabel)
		if err == nil {
			e.emit(ctx, Event{Kind: EventBackedUp, User: m.Unit.User, Unit: m.Unit.Name, Version: cyc.Version, Reason: s.Path})
		}
		return err
	}
	if backup() == nil {
		return nil
	}
	if err := e.Units.Stop(ctx, m.Unit); err != nil {
		return fmt.Errorf("stop %s to back it up: %w", m.Unit.User, err)
	}
	if err := backup(); err != nil {
		return leftStopped(m, cyc, err)
	}
	return nil
}

func leftStopped(m Member, cyc CycleOptions, err error) error {
	return fmt.Errorf("%s left stopped: its restart would move it to %s and migrate its database, and no backup could be taken, running or stopped: %w",
		m.Unit.User, cyc.Version, err)
}

// restartWithoutBackup restarts and verifies; a failure freezes and
// restarts once more through Rollback (no database to restore).
func (w *Watchdog) restartWithoutBackup(ctx context.Context, m Member, version string, backupErr error) error {
	e := w.Engine
	err := e.RestartVerify(ctx, m)
	if err == nil || errors.Is(err, ErrCrashed) || noVerdict(err) {
		return err
	}
	reason := fmt.Sprintf("%s %s failed on %s (no backup: %v): %v", WatchdogLabel, m.Unit.User, version, backupErr, err)
	if rerr := e.Rollback(ctx, Rollback{Reason: reason, Restores: []Restore{{Member: m}}}); rerr != nil {
		return rerr
	}
	return fmt.Errorf("%w: %s", ErrRolledBack, reason)
}

func (w *Watchdog) runningVersion(ctx context.Context, m Member) string {
	e := w.Engine
	if vr, ok := e.Units.(VersionReporter); ok {
		if v, err := vr.RunningVersion(ctx, m.Unit); err == nil && v != "" {
			return v
		}
	}
	v, err := e.Installer.Current(ctx)
	if err != nil {
		return ""
	}
	return v
}

// rolledOut is when version became last-good (the file's mtime), zero when
// it is not the last-good version.
func (s State) rolledOut(version string) time.Time {
	lg, err := s.LastGood()
	if err != nil || lg == "" || lg != version {
		return time.Time{}
	}
	fi, err := os.Stat(s.path(LastGoodFile))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
