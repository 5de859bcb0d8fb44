package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/statebackup"
)

// VersionReporter is implemented by a UnitManager that knows which build a
// unit's process was started from. Status uses it when present.
type VersionReporter interface {
	RunningVersion(ctx context.Context, u Unit) (string, error)
}

// InstanceStatus is one instance in Status.
type InstanceStatus struct {
	User         string
	Unit         string
	Status       UnitStatus
	Version      string                // from a VersionReporter; "" when unknown
	Deferred     string                // the version its deferral marker asks for
	NewestBackup *statebackup.Snapshot // nil when none
	Err          string                // what could not be read
}

// Status is the updater's state and the fleet's, for `updater status`.
type Status struct {
	Current   string
	LastGood  string
	Freeze    *Freeze
	Expired   bool
	DeadEnds  []DeadEnd
	Markers   []Marker
	Journal   *Journal
	Cycle     *UnfinishedCycle // a drain's or the watchdog's restart cut short
	Instances []InstanceStatus
	// Unreadable holds the errors of the state files that could not be
	// read, each naming its file; everything else is read all the same.
	Unreadable []error
	// LastGoodUnknown and FreezeUnknown say that LastGood and Freeze are
	// empty because their files could not be read (in Unreadable), not
	// because there is none: an unknown freeze must never read as none.
	LastGoodUnknown, FreezeUnknown bool
}

// UnfinishedCycle is a Cycle a crash or a signal cut short (CycleJournalFile).
type UnfinishedCycle struct {
	User    string
	Label   string // DrainLabel or WatchdogLabel
	Version string // the build the unit was moving to
	Phase   string // "restart" or "rollback"
}

// Status reads the state directory, the freeze file and the fleet. It takes
// no lock and changes nothing; per-instance problems land in Err. A state
// file it cannot read is listed in Unreadable and returned (joined) as the
// error, with the rest of the status: the operator who meets a malformed
// journal at 3 a.m. still sees the freeze and the units.
func (e *Engine) Status(ctx context.Context) (Status, error) {
	st := e.State()
	var s Status
	unreadable := func(err error) bool {
		if err != nil {
			s.Unreadable = append(s.Unreadable, err)
		}
		return err != nil
	}
	var err error
	s.LastGood, err = st.LastGood()
	s.LastGoodUnknown = unreadable(err)
	s.Freeze, err = e.Freezer().Read()
	s.FreezeUnknown = unreadable(err)
	s.Expired = s.Freeze != nil && s.Freeze.Expired(e.now())
	s.DeadEnds, err = st.DeadEnds()
	unreadable(err)
	s.Markers, err = st.Markers()
	unreadable(err)
	s.Journal, err = st.Journal()
	unreadable(err)
	if cj, err := st.cycle(); !unreadable(err) && cj != nil {
		s.Cycle = &UnfinishedCycle{User: cj.User, Label: cj.Options.Label, Version: cj.Options.Version, Phase: cj.Phase}
	}
	s, err = e.fleetStatus(ctx, s)
	return s, errors.Join(append(s.Unreadable, err)...)
}

// fleetStatus adds the current build and each instance to s.
func (e *Engine) fleetStatus(ctx context.Context, s Status) (Status, error) {
	var err error
	if e.Installer != nil {
		if s.Current, err = e.Installer.Current(ctx); err != nil {
			return s, fmt.Errorf("current version: %w", err)
		}
	}
	if e.Units == nil {
		return s, nil
	}
	// A unit that cannot be placed (a bad line of the user map) is shown
	// with its error; it does not hide the others.
	fleet, unplaced, err := e.fleetEach(ctx)
	if err != nil {
		return s, err
	}
	vr, _ := e.Units.(VersionReporter)
	markers := map[string]string{}
	for _, m := range s.Markers {
		markers[m.User] = m.Target
	}
	for _, m := range fleet {
		is := InstanceStatus{User: m.Unit.User, Unit: m.Unit.Name, Deferred: markers[m.Unit.User]}
		var errs []string
		if us, err := e.Units.Status(ctx, m.Unit); err != nil {
			errs = append(errs, "status: "+err.Error())
		} else {
			is.Status = us
		}
		if vr != nil {
			if v, err := vr.RunningVersion(ctx, m.Unit); err != nil {
				errs = append(errs, "version: "+err.Error())
			} else {
				is.Version = v
			}
		}
		if e.Backups != nil {
			if snaps, err := e.Backups.List(ctx, m.Target("")); err != nil {
				errs = append(errs, "backups: "+err.Error())
			} else if n, ok := newest(snaps); ok {
				is.NewestBackup = &n
			}
		}
		if len(errs) > 0 {
			is.Err = fmt.Sprint(errs)
		}
		s.Instances = append(s.Instances, is)
	}
	for _, f := range unplaced {
		s.Instances = append(s.Instances, InstanceStatus{User: f.Unit.User, Unit: f.Unit.Name, Err: f.Err.Error()})
	}
	return s, nil
}

// Lines renders the status for a terminal. Every string it did not make
// itself goes through t3fleet.Printable: a running version is what a
// user's instance answers, a backup's path names a file in the user's
// directory, an error or a freeze reason may quote either, and the state
// files are read back as they are found.
func (s Status) Lines() []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	p := t3fleet.Printable
	lastGood := orNone(p(s.LastGood))
	if s.LastGoodUnknown {
		lastGood = "unknown (unreadable, below)"
	}
	add("current %s, last-good %s", orNone(p(s.Current)), lastGood)
	switch {
	case s.FreezeUnknown:
		add("freeze unknown (unreadable, below): runs stop until it can be read")
	case s.Freeze == nil:
		add("not frozen")
	case s.Expired:
		add("freeze expired (ignored): %s", p(s.Freeze.String()))
	default:
		add("FROZEN: %s", p(s.Freeze.String()))
	}
	if j := s.Journal; j != nil {
		next := "the next run finishes it"
		switch j.Phase {
		case PhasePrepare:
			next = "nothing live changed: the next run starts over"
		case PhaseRollback:
			next = "the next run finishes the rollback"
		}
		add("unfinished run: %s -> %s, phase %s, step %s (%s)", p(j.Previous), p(j.Target), p(string(j.Phase)), p(j.Step), next)
	}
	if c := s.Cycle; c != nil {
		add("unfinished %s of %s onto %s, phase %s (the next run, drain or watchdog tick finishes it first)", p(c.Label), p(c.User), p(c.Version), p(c.Phase))
	}
	for _, d := range s.DeadEnds {
		add("dead end %s: %s", p(d.Version), p(d.Reason))
	}
	for _, m := range s.Markers {
		add("deferred %s -> %s since %s", m.User, p(m.Target), m.Written.UTC().Format(time.RFC3339))
	}
	for _, is := range s.Instances {
		state := p(is.Status.State)
		if state == "" {
			state = "unknown"
		}
		// An instance Fleet could not place may have an invalid user name.
		line := fmt.Sprintf("%s %s %s version=%s", p(is.User), p(is.Unit), state, orNone(p(is.Version)))
		if !is.Status.ActiveSince.IsZero() {
			line += " since=" + is.Status.ActiveSince.UTC().Format(time.RFC3339)
		}
		if is.Deferred != "" {
			line += " deferred->" + p(is.Deferred)
		}
		if is.NewestBackup != nil {
			line += fmt.Sprintf(" backup=%s (%s)", p(is.NewestBackup.Path), is.NewestBackup.Time.UTC().Format(time.RFC3339))
		} else {
			line += " backup=(none)"
		}
		if is.Err != "" {
			line += " error=" + p(is.Err)
		}
		out = append(out, line)
	}
	for _, err := range s.Unreadable {
		add("UNREADABLE: %s", p(err.Error()))
	}
	return out
}

// SetFreeze freezes the fleet: reason, who, now, and an expiry when d > 0.
func (e *Engine) SetFreeze(reason, who string, d time.Duration) (Freeze, error) {
	f := Freeze{Reason: reason, Who: who, When: e.now()}
	if d > 0 {
		f.Until = f.When.Add(d)
	}
	return f, e.Freezer().Write(f)
}

// Unfreeze removes the freeze, returning what it was (nil when none).
func (e *Engine) Unfreeze() (*Freeze, error) {
	f, err := e.Freezer().Read()
	if err != nil {
		return nil, err
	}
	return f, e.Freezer().Remove()
}
