package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet"
)

// Defaults of DrainOptions.
const (
	// DefaultStaleMarkerAge: a deferral marker older than this is reported.
	DefaultStaleMarkerAge = 7 * 24 * time.Hour
	// DrainLabel is the label of the backups the idle drainer takes.
	DrainLabel = "pre-migrate-idle"
)

// Events of the idle drainer.
const (
	EventMarkerCleared EventKind = "marker-cleared" // no restart needed: unit gone, stopped or restarted since
	EventMigrated      EventKind = "migrated"       // a deferred unit was restarted onto the current build
	EventStillDeferred EventKind = "still-deferred" // busy, or outside the window
	EventStaleMarker   EventKind = "stale-marker"   // a marker older than StaleAfter
)

// DrainOptions tune MigrateIdle; the zero value works.
type DrainOptions struct {
	// Window is when units may be restarted; zero: DefaultDrainWindow.
	// Markers are cleared (never restarted) outside it too.
	Window Window
	// StaleAfter: markers older than this are reported; zero:
	// DefaultStaleMarkerAge.
	StaleAfter time.Duration
}

func (o DrainOptions) staleAfter() time.Duration {
	if o.StaleAfter <= 0 {
		return DefaultStaleMarkerAge
	}
	return o.StaleAfter
}

// DrainOutcome says how a drain ended.
type DrainOutcome string

// Outcomes of MigrateIdle.
const (
	DrainDone           DrainOutcome = "done"
	DrainFrozen         DrainOutcome = "frozen"
	DrainLocked         DrainOutcome = "locked"
	DrainPendingRun     DrainOutcome = "pending-run" // a journal waits for `updater run`
	DrainRolledBack     DrainOutcome = "rolled-back"
	DrainRollbackFailed DrainOutcome = "rollback-failed"
	DrainFailed         DrainOutcome = "failed"
)

// ClearedMarker is a marker removed without a restart, and why.
type ClearedMarker struct {
	User, Why string
}

// DrainResult is what one MigrateIdle did.
type DrainResult struct {
	Outcome  DrainOutcome
	Reason   string
	Current  string
	InWindow bool
	Migrated []string        // restarted onto Current and verified
	Cleared  []ClearedMarker // removed without a restart
	Waiting  []string        // still deferred: "<user> (<why>)"
	Stale    []Marker        // older than StaleAfter (still present or not)
	Took     time.Duration
}

// ExitCode is 0 for done, frozen, locked and pending-run; 1 otherwise.
func (r DrainResult) ExitCode() int {
	switch r.Outcome {
	case DrainDone, DrainFrozen, DrainLocked, DrainPendingRun:
		return 0
	}
	return 1
}

// Line is the one-line summary a command prints. Why a user still waits
// is their idle gate's verdict, which names their processes; it and the
// reason go through t3fleet.Printable, each waiting user on their own.
func (r DrainResult) Line() string {
	q := t3fleet.Printable
	switch r.Outcome {
	case DrainDone:
		return fmt.Sprintf("migrate-idle: migrated=%d [%s] cleared=%d waiting=%d [%s] stale=%d took=%s",
			len(r.Migrated), strings.Join(r.Migrated, " "), len(r.Cleared), len(r.Waiting),
			strings.Join(printableEach(r.Waiting), ", "), len(r.Stale), r.Took.Round(time.Millisecond))
	case DrainFrozen:
		return "FROZEN: " + q(r.Reason)
	case DrainLocked:
		return "another run holds the lock: " + q(r.Reason)
	case DrainPendingRun:
		return "migrate-idle: " + q(r.Reason)
	case DrainRolledBack:
		return "rolled back: " + q(r.Reason)
	case DrainRollbackFailed:
		return "ROLLBACK FAILED: " + q(r.Reason)
	}
	return "migrate-idle failed: " + q(r.Reason)
}

// MigrateIdle is one `updater migrate-idle`: under the lock, and unless
// frozen, it walks the deferral markers. A marker whose unit is gone, stopped,
// or was (re)started after the marker was written is cleared: that unit
// already runs, or will start on, the current build. Any other marker's unit
// is restarted onto the current build only inside the window and when the
// idle gate says idle, through Cycle (backup, restart, verify through the
// dispatch); success clears the marker. Before the first restart, the
// verification path is checked on a user already on the current build (see
// Run). The first failure has already been
// recovered by Cycle (database restored, back to last-good, frozen) and stops
// the drain.
func (e *Engine) MigrateIdle(ctx context.Context, o DrainOptions) (DrainResult, error) {
	start := e.now()
	if err := e.check(); err != nil {
		return DrainResult{Outcome: DrainFailed, Reason: err.Error()}, err
	}
	lock, busy, err := e.lockOrBusy(ctx, "migrate-idle")
	if busy != nil {
		return DrainResult{Outcome: DrainLocked, Reason: busy.Error()}, nil
	}
	if err != nil {
		return DrainResult{Outcome: DrainFailed, Reason: err.Error()}, err
	}
	defer lock.Release()
	res, err := e.drain(ctx, o)
	res.Took = e.now().Sub(start)
	if err != nil && res.Outcome == "" {
		res.Outcome, res.Reason = DrainFailed, err.Error()
	}
	return res, err
}

func (e *Engine) drain(ctx context.Context, o DrainOptions) (DrainResult, error) {
	st := e.State()
	now := e.now()
	var res DrainResult
	// A drain's or the watchdog's restart that a crash or a signal cut
	// short is finished first, frozen or not (its rollback froze).
	if user, migrated, err := e.finishCycle(ctx); err != nil {
		return cycleEnded(res, user, err)
	} else if migrated {
		res.Migrated = append(res.Migrated, user)
	}
	if j, err := st.Journal(); err != nil {
		return res, err
	} else if j != nil {
		res.Outcome = DrainPendingRun
		res.Reason = fmt.Sprintf("an unfinished run (%s -> %s, phase %s) waits for `updater run`; not draining", j.Previous, j.Target, j.Phase)
		return res, nil
	}
	if fr, err := e.activeFreeze(ctx, now); err != nil {
		return res, err
	} else if fr != nil {
		return DrainResult{Outcome: DrainFrozen, Reason: fr.String()}, nil
	}
	markers, err := st.Markers()
	if err != nil {
		return res, err
	}
	res.Stale = StaleMarkers(markers, now, o.staleAfter())
	for _, m := range res.Stale {
		e.emit(ctx, Event{Kind: EventStaleMarker, User: m.User, Version: m.Target,
			Reason: fmt.Sprintf("deferred since %s (%s)", m.Written.UTC().Format(time.RFC3339), now.Sub(m.Written).Round(time.Hour))})
	}
	if len(markers) == 0 {
		res.Outcome = DrainDone
		return res, nil
	}
	if res.Current, err = e.Installer.Current(ctx); err != nil {
		return res, fmt.Errorf("current version: %w", err)
	}
	lastGood, err := st.LastGood()
	if err != nil {
		return res, err
	}
	fleet, err := e.Fleet(ctx)
	if err != nil {
		return res, err
	}
	byUser := make(map[string]Member, len(fleet))
	for _, m := range fleet {
		byUser[m.Unit.User] = m
	}
	res.InWindow = o.Window.Contains(now)
	pathChecked := false
	for _, mk := range markers {
		m, ok := byUser[mk.User]
		if !ok {
			if err := e.clearMarker(ctx, &res, mk, "", "unit gone"); err != nil {
				return res, err
			}
			continue
		}
		us, err := e.Units.Status(ctx, m.Unit)
		if err != nil {
			return res, fmt.Errorf("status %s: %w", mk.User, err)
		}
		if why, clear := markerSettled(mk, us); clear {
			if err := e.clearMarker(ctx, &res, mk, m.Unit.Name, why); err != nil {
				return res, err
			}
			continue
		}
		if !res.InWindow {
			e.wait(ctx, &res, mk, m, "outside the window "+o.Window.String())
			continue
		}
		if idle, why := e.idle(ctx, m); !idle {
			e.wait(ctx, &res, mk, m, why)
			continue
		}
		if !pathChecked {
			// Before the first restart: a drain whose verification fails on
			// the path, not on the build, would roll back and freeze.
			if err := e.checkPath(ctx, fleet, res.Current, "the drain stopped before any restart, markers kept"); err != nil {
				return res, err
			}
			pathChecked = true
		}
		to, note := e.drainRollbackTo(ctx, m, fleet, 0, lastGood, res.Current) // Fleet placed every unit
		if err := e.Cycle(ctx, m, CycleOptions{Label: DrainLabel, Version: res.Current, RollbackTo: to, Note: note}); err != nil {
			return cycleEnded(res, mk.User, err)
		}
		if err := st.ClearMarker(mk.User); err != nil {
			return res, err
		}
		res.Migrated = append(res.Migrated, mk.User)
		if lastGood != res.Current {
			// A run whose every unit was deferred left the build unproven;
			// this verified restart proves it, as a canary would have.
			if err := st.SetLastGood(res.Current); err != nil {
				return res, err
			}
			lastGood = res.Current
		}
		e.emit(ctx, Event{Kind: EventMigrated, User: mk.User, Unit: m.Unit.Name, Version: res.Current,
			Reason: "deferred for " + mk.Target})
	}
	res.Outcome = DrainDone
	return res, nil
}

// cycleEnded is the drain's result after a Cycle of user failed with err: a
// rollback, or (a failed backup, a signal) nothing changed and the drain
// stops before touching more units.
func cycleEnded(res DrainResult, user string, err error) (DrainResult, error) {
	switch {
	case errors.Is(err, ErrRollbackFailed): // Line adds the alert prefix
		res.Outcome, res.Reason = DrainRollbackFailed, reasonOf(err, ErrRollbackFailed)
		return res, err
	case errors.Is(err, ErrRolledBack):
		res.Outcome, res.Reason = DrainRolledBack, reasonOf(err, ErrRolledBack)
		return res, err
	}
	return res, fmt.Errorf("migrate %s: %w", user, err)
}

// drainRollbackTo is the build a failed drain goes back to: last-good when
// it differs from the active build, else the build the unit was running
// (a VersionReporter knows it), else none: the unit's database is restored
// and it restarts on the active build. The binary is shared, so going back
// is for the whole fleet: it is done only while no other unit has moved to
// the active build (whose database the older one could not read), and no
// unit went unplaced (unplaced: units missing from fleet, which may run
// anything); else none, and note says who holds the build in place.
func (e *Engine) drainRollbackTo(ctx context.Context, m Member, fleet []Member, unplaced int, lastGood, current string) (to, note string) {
	switch {
	case lastGood != "" && lastGood != current:
		to = lastGood
	default:
		if vr, ok := e.Units.(VersionReporter); ok {
			if v, err := vr.RunningVersion(ctx, m.Unit); err == nil && v != "" && v != current {
				if _, perr := ParseVersion(v); perr == nil {
					to = v
				}
			}
		}
	}
	if to == "" {
		return "", ""
	}
	if unplaced > 0 {
		return "", fmt.Sprintf("%s stays active: %d unit(s) could not be placed, and may run it", current, unplaced)
	}
	if moved := e.movedTo(ctx, fleet, m, current); moved != "" {
		return "", fmt.Sprintf("%s stays active: %s already runs it, and %s could not read that database", current, moved, to)
	}
	return to, ""
}

// movedTo names a unit of fleet other than m that may run current. One
// without a deferral marker may, unless a VersionReporter says it runs
// another build; stopped units count (their database may have moved before
// they stopped), and so does any unit when the markers cannot be read. One
// with a marker may too if a VersionReporter says it runs current, or if it
// was started after its marker was written (a drain stopped after moving
// it, before clearing the marker).
func (e *Engine) movedTo(ctx context.Context, fleet []Member, m Member, current string) string {
	deferred, err := e.State().markersByUser()
	vr, _ := e.Units.(VersionReporter)
	for _, o := range fleet {
		u := o.Unit.User
		if u == m.Unit.User {
			continue
		}
		var v string
		if vr != nil {
			if rv, verr := vr.RunningVersion(ctx, o.Unit); verr == nil {
				v = rv
			}
		}
		if mk, ok := deferred[u]; ok && err == nil {
			if v == current {
				return u
			}
			if us, serr := e.Units.Status(ctx, o.Unit); serr == nil && us.Active && !us.ActiveSince.IsZero() && us.ActiveSince.After(mk.Written) {
				return u
			}
			continue
		}
		if v != "" && v != current {
			continue
		}
		return u
	}
	return ""
}

// markerSettled says whether a marker needs no restart: the unit is not
// running (it starts on the current build) or was started after the marker
// was written.
func markerSettled(mk Marker, us UnitStatus) (string, bool) {
	if !us.Active {
		state := us.State
		if state == "" {
			state = "inactive"
		}
		return "not running (" + state + "); it starts on the current build", true
	}
	if !us.ActiveSince.IsZero() && us.ActiveSince.After(mk.Written) {
		return "restarted after the marker (active since " + us.ActiveSince.UTC().Format(time.RFC3339) + ")", true
	}
	return "", false
}

func (e *Engine) clearMarker(ctx context.Context, res *DrainResult, mk Marker, unit, why string) error {
	if err := e.State().ClearMarker(mk.User); err != nil {
		return err
	}
	res.Cleared = append(res.Cleared, ClearedMarker{User: mk.User, Why: why})
	e.emit(ctx, Event{Kind: EventMarkerCleared, User: mk.User, Unit: unit, Version: mk.Target, Reason: why})
	return nil
}

func (e *Engine) wait(ctx context.Context, res *DrainResult, mk Marker, m Member, why string) {
	res.Waiting = append(res.Waiting, mk.User+" ("+why+")")
	e.emit(ctx, Event{Kind: EventStillDeferred, User: mk.User, Unit: m.Unit.Name, Version: mk.Target, Reason: why})
}

// StaleMarkers returns the markers written more than after before now.
func StaleMarkers(markers []Marker, now time.Time, after time.Duration) []Marker {
	if after <= 0 {
		after = DefaultStaleMarkerAge
	}
	var out []Marker
	for _, m := range markers {
		if now.Sub(m.Written) > after {
			out = append(out, m)
		}
	}
	return out
}
