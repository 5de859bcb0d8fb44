package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/t3fleet/t3fleet/statebackup"
)

// CycleJournalFile, in the state directory, records the one Cycle under way
// (a drain's or the watchdog's restart of a unit), so that the next run,
// drain or watchdog tick finishes it after a crash or a signal.
const CycleJournalFile = "cycle.json"

// Phases of a Cycle's journal.
const (
	cycleRestart  = "restart"  // backed up; the restart may have begun
	cycleRollback = "rollback" // the verification failed; the rollback may have begun
)

// CycleOptions tune Cycle.
type CycleOptions struct {
	Label      string `json:"label"`                 // backup label, e.g. "pre-migrate-idle"
	Version    string `json:"version"`               // the active version the unit moves to; recorded with the backup
	DeadEnd    bool   `json:"dead_end,omitempty"`    // on failure, add Version to the dead ends
	RollbackTo string `json:"rollback_to,omitempty"` // on failure, activate this version; "" keeps the active one
	Note       string `json:"note,omitempty"`        // added to a failure's reason (e.g. why RollbackTo is empty)
}

// cycleJournal is a Cycle under way.
type cycleJournal struct {
	User     string                `json:"user"`
	Options  CycleOptions          `json:"options"`
	Snapshot *statebackup.Snapshot `json:"snapshot,omitempty"` // nil: the unit had no database
	Phase    string                `json:"phase"`
	Bad      string                `json:"bad,omitempty"`    // rollback: the version it dead-ends
	Reason   string                `json:"reason,omitempty"` // rollback: why
}

// Cycle is the per-unit routine the idle drainer and the watchdog share:
// backup -> restart -> verify -> on failure Rollback (restore that user's
// database, switch to RollbackTo, freeze). It does not take the lock and
// does not consult the idle gate or the freeze: the caller does.
// A failure returns an error wrapping ErrRolledBack or ErrRollbackFailed.
// From the backup on it is journalled (CycleJournalFile): one cut short is
// finished by the next Run, MigrateIdle or watchdog tick, with this backup.
func (e *Engine) Cycle(ctx context.Context, m Member, o CycleOptions) error {
	if err := e.check(); err != nil {
		return err
	}
	cj := &cycleJournal{User: m.Unit.User, Options: o, Phase: cycleRestart}
	var err error
	if cj.Snapshot, err = e.backup(ctx, m, o.Version, o.Label, o.Version); err != nil {
		return err
	}
	if err := e.State().writeCycle(cj); err != nil {
		return err
	}
	return e.cycleRestart(ctx, m, cj)
}

// cycleRestart restarts and verifies m as cj records, and rolls back on a
// failed verification. A crash, or an end that tells nothing of the build
// (a signal, the unit manager failing), leaves the journal for the next.
func (e *Engine) cycleRestart(ctx context.Context, m Member, cj *cycleJournal) error {
	err := e.restartVerify(ctx, m, cj.Options.Version)
	if errors.Is(err, ErrCrashed) || noVerdict(err) {
		return err
	}
	if err == nil {
		return e.State().removeCycle()
	}
	o := cj.Options
	cj.Phase, cj.Reason = cycleRollback, fmt.Sprintf("%s %s failed on %s: %v", o.Label, m.Unit.User, o.Version, err)
	if o.Note != "" {
		cj.Reason += "; " + o.Note
	}
	if o.DeadEnd && !errors.Is(err, ErrWrongBuild) { // a wrong build is nobody's: rolled back and frozen all the same
		cj.Bad = o.Version
	}
	// As a run's canary: a journal that cannot be written (its disk full)
	// does not hold the rollback back. The one on disk still records the
	// restart, which a tick cut short here redoes before rolling back.
	werr := e.State().writeCycle(cj)
	if werr != nil {
		werr = fmt.Errorf("rolled back without its journal: %w", werr)
	}
	return errors.Join(e.cycleRollback(ctx, m, cj), werr)
}

// cycleRollback runs the rollback cj records; the journal goes once the
// rollback has ended, a failed one included (that one is for a person, and
// its freeze says so).
func (e *Engine) cycleRollback(ctx context.Context, m Member, cj *cycleJournal) error {
	rb := Rollback{Bad: cj.Bad, To: cj.Options.RollbackTo, Reason: cj.Reason,
		Restores: []Restore{{Member: m, Snapshot: cj.Snapshot}}}
	err := e.Rollback(ctx, rb)
	if errors.Is(err, ErrCrashed) {
		return err
	}
	if rerr := e.State().removeCycle(); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s", ErrRolledBack, rb.Reason)
}

// finishCycle finishes a Cycle that a crash or a signal cut short, with the
// backup it took: the restart is made and verified again, busy or not (the
// unit may already run the new build on a migrated database), or the
// rollback is run again. A verified unit's deferral marker for the version
// is cleared (migrated), and a drain's verified restart proves the version
// as the drain's own would (last-good). It returns the user whose Cycle it
// finished ("" when none was pending) and that Cycle's outcome.
func (e *Engine) finishCycle(ctx context.Context) (user string, migrated bool, err error) {
	st := e.State()
	cj, err := st.cycle()
	if err != nil || cj == nil {
		return "", false, err
	}
	// Another unit that cannot be placed (a bad line of the user map) does
	// not stop this one being finished; this one unplaced does.
	fleet, unplaced, err := e.fleetEach(ctx)
	if err == nil {
		if i := slices.IndexFunc(unplaced, func(f UnitError) bool { return f.Unit.User == cj.User }); i >= 0 {
			err = unplaced[i].Err
		}
	}
	if err != nil {
		return cj.User, false, fmt.Errorf("finish the %s of %s: %w", cj.Options.Label, cj.User, err)
	}
	i := slices.IndexFunc(fleet, func(m Member) bool { return m.Unit.User == cj.User })
	if i < 0 {
		e.emit(ctx, Event{Kind: EventResumed, User: cj.User, Reason: "the unit of an unfinished " + cj.Options.Label + " is gone; nothing to finish"})
		return "", false, st.removeCycle()
	}
	m := fleet[i]
	e.emit(ctx, Event{Kind: EventResumed, User: cj.User, Unit: m.Unit.Name, Version: cj.Options.Version,
		Reason: fmt.Sprintf("its %s was under way (%s) when the last one stopped: finished first, busy or not", cj.Options.Label, cj.Phase)})
	if cj.Phase == cycleRollback {
		return cj.User, false, e.cycleRollback(ctx, m, cj)
	}
	if err := e.cycleRestart(ctx, m, cj); err != nil {
		return cj.User, false, err
	}
	if cj.Options.Label == DrainLabel {
		if lg, err := st.LastGood(); err == nil && lg != cj.Options.Version {
			if err := st.SetLastGood(cj.Options.Version); err != nil {
				return cj.User, false, err
			}
		}
	}
	mk, err := st.Marker(cj.User)
	if err != nil || mk == nil || mk.Target != cj.Options.Version {
		return cj.User, false, err
	}
	if err := st.ClearMarker(cj.User); err != nil {
		return cj.User, false, err
	}
	e.emit(ctx, Event{Kind: EventMigrated, User: cj.User, Unit: m.Unit.Name, Version: cj.Options.Version,
		Reason: "deferred for " + mk.Target + "; its " + cj.Options.Label + " finished"})
	return cj.User, true, nil
}

// cycle returns the journal of a Cycle under way, nil when none.
func (s State) cycle() (*cycleJournal, error) {
	var cj cycleJournal
	if found, err := s.readJSON(CycleJournalFile, "cycle journal", &cj); err != nil || !found {
		return nil, err
	}
	if cj.User == "" || (cj.Phase != cycleRestart && cj.Phase != cycleRollback) {
		return nil, fmt.Errorf("cycle journal %s: %w: no user, or phase %q; inspect it, then move it aside", s.path(CycleJournalFile), ErrMalformed, cj.Phase)
	}
	return &cj, nil
}

func (s State) writeCycle(cj *cycleJournal) error {
	return s.writeJSON(CycleJournalFile, "cycle journal", cj)
}

func (s State) removeCycle() error { return s.removeSynced(CycleJournalFile, "cycle journal") }
