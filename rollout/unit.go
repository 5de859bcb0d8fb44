package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/t3fleet/t3fleet/statebackup"
)

// CanaryError is a unit that failed its restart or verification.
type CanaryError struct {
	User string
	Step string // "restart" or "verify"
	Err  error
}

func (e *CanaryError) Error() string { return e.Step + " " + e.User + ": " + e.Err.Error() }
func (e *CanaryError) Unwrap() error { return e.Err }

// RestartVerify restarts one unit (onto whatever build is active) and
// verifies, through the Verifier, that its user can pair, bounded by
// VerifyTimeout. The Verifier gets the SSO name (m.Instance.User, the OS
// user when unset): the dispatch knows users by it. It does not recover:
// see Cycle and Rollback.
func (e *Engine) RestartVerify(ctx context.Context, m Member) error {
	return e.restartVerify(ctx, m, "")
}

// noVerdict says whether err, from restartVerify, tells nothing about the
// build nor the unit: the caller stops, nothing is rolled back, and the
// next run takes it up where this one stopped.
func noVerdict(err error) bool {
	return errors.Is(err, ErrInterrupted) || errors.Is(err, ErrUnitManager)
}

// restartVerify is RestartVerify; with want set and a VersionReporter, the
// verified instance must also report want (else ErrWrongBuild).
func (e *Engine) restartVerify(ctx context.Context, m Member, want string) error {
	u := m.Unit
	t0 := e.now()
	if err := e.Units.Restart(ctx, u); err != nil {
		if ierr := e.interrupted(ctx, u, "restart", err); ierr != nil {
			return ierr
		}
		if errors.Is(err, ErrUnitManager) {
			e.emit(ctx, Event{Kind: EventInterrupted, User: u.User, Unit: u.Name, Err: err,
				Reason: "the unit manager failed restarting " + u.User + ": no build is blamed, and the next run finishes what this one began"})
			return fmt.Errorf("restarting %s, no build is blamed (the next run finishes what this one began): %w", u.User, err)
		}
		e.emit(ctx, Event{Kind: EventVerifyFailed, User: u.User, Unit: u.Name, Err: err, Reason: "restart failed"})
		return &CanaryError{User: u.User, Step: "restart", Err: err}
	}
	e.emit(ctx, Event{Kind: EventRestarted, User: u.User, Unit: u.Name, Took: e.now().Sub(t0)})
	if err := e.crash("restart:" + u.User); err != nil {
		return err
	}
	if err := e.verify(ctx, m.SSOName()); err != nil {
		if ierr := e.interrupted(ctx, u, "verification", err); ierr != nil {
			return ierr
		}
		e.emit(ctx, Event{Kind: EventVerifyFailed, User: u.User, Unit: u.Name, Err: err})
		return &CanaryError{User: u.User, Step: "verify", Err: err}
	}
	if vr, ok := e.Units.(VersionReporter); ok && want != "" {
		if v, err := vr.RunningVersion(ctx, u); err == nil && v != "" && strings.TrimPrefix(v, "v") != strings.TrimPrefix(want, "v") {
			reason := fmt.Sprintf("%s answers as %s after its restart onto %s (a stale process on its port, or a unit that does not run the switched binary); no build is blamed",
				u.User, v, want)
			e.emit(ctx, Event{Kind: EventInterrupted, User: u.User, Unit: u.Name, Version: want, Reason: reason})
			return fmt.Errorf("%w: %s", ErrWrongBuild, reason)
		}
	}
	e.emit(ctx, Event{Kind: EventVerified, User: u.User, Unit: u.Name, Took: e.now().Sub(t0)})
	return nil
}

// interrupted returns an error wrapping ErrInterrupted when ctx ended while
// step of u ran: err then tells nothing about the build. Nil otherwise.
func (e *Engine) interrupted(ctx context.Context, u Unit, step string, err error) error {
	if ctx.Err() == nil {
		return nil
	}
	reason := fmt.Sprintf("stopped at the %s of %s (%v); no build is blamed, and the next run finishes what this one began", step, u.User, context.Cause(ctx))
	e.emit(ctx, Event{Kind: EventInterrupted, User: u.User, Unit: u.Name, Reason: reason, Err: err})
	return fmt.Errorf("%w: %s", ErrInterrupted, reason)
}

// SSOName is the name the dispatch knows the member's user by.
func (m Member) SSOName() string {
	if m.Instance.User != "" {
		return m.Instance.User
	}
	return m.Unit.User
}

func (e *Engine) verify(ctx context.Context, user string) error {
	d := e.VerifyTimeout
	if d <= 0 {
		d = DefaultVerifyTimeout
	}
	vctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return e.Verifier.VerifyPairing(vctx, user)
}

// Restore is one unit a rollback puts back: its database from Snapshot (nil:
// it had none, only restart it).
type Restore struct {
	Member   Member
	Snapshot *statebackup.Snapshot
}

// Rollback is the recovery after a failed canary (or drain, or watchdog
// restart): freeze first, so nothing moves while it runs.
type Rollback struct {
	Bad      string // version to add to the dead ends; "" for none
	To       string // version to activate; "" keeps the active one
	Reason   string // why; becomes the freeze reason
	Restores []Restore
	// unplaced are users moved onto Bad whose unit is no longer listed:
	// their database cannot be put back, so the rollback fails naming them.
	unplaced []string
}

// Rollback freezes with the reason, dead-ends Bad, stops each unit and
// restores its database, activates To, starts the units again and verifies
// them. It emits RolledBack, or RollbackFailed and returns an error wrapping
// ErrRollbackFailed. It does not take the lock: the caller holds it.
func (e *Engine) Rollback(ctx context.Context, rb Rollback) error {
	// Once begun, a rollback is finished even if the caller is told to
	// stop: half of one leaves a unit stopped, or on a database its build
	// cannot read. Each step has its own bound (VerifyTimeout, the unit
	// manager's job timeouts); a kill is a crash, which the journal covers.
	ctx = context.WithoutCancel(ctx)
	st := e.State()
	var errs []error
	fr := Freeze{Reason: rb.Reason, Who: e.who(), When: e.now()}
	if err := e.Freezer().Write(fr); err != nil {
		errs = append(errs, err)
	}
	if err := e.crash("rollback-freeze"); err != nil {
		return err
	}
	if rb.Bad != "" {
		if err := st.AddDeadEnd(rb.Bad, rb.Reason); err != nil {
			errs = append(errs, err)
		}
	}
	// What each unit is after the first pass decides the second: a unit
	// whose database could not be put back is never started on the build
	// the rollback goes to, since that build cannot read what the target
	// migrated (the 2026-06-09 outage). It stays as it is, for a person.
	const (
		untouched = iota // its stop failed; it had no snapshot, so a restart is safe
		stopped          // stopped, and its database back (or it had none to restore)
		leftAlone        // its stop or restore failed on a migrated database
	)
	state := make([]int, len(rb.Restores))
	for i, r := range rb.Restores {
		u := r.Member.Unit
		if err := e.Units.Stop(ctx, u); err != nil {
			// Never restore under a running server.
			errs = append(errs, fmt.Errorf("stop %s: %w", u.User, err))
			if r.Snapshot != nil {
				state[i] = leftAlone // still on the target's build, which can read its database
			}
			continue
		}
		state[i] = stopped
		if r.Snapshot != nil {
			if err := e.Backups.Restore(ctx, r.Member.Target(r.Snapshot.Version), *r.Snapshot); err != nil {
				errs = append(errs, stepError(err, "restore", u.User, func(e *statebackup.RestoreError) string { return e.User }))
				state[i] = leftAlone // stopped on a database the old build cannot read
				continue
			}
			e.emit(ctx, Event{Kind: EventRestored, User: u.User, Unit: u.Name, Reason: r.Snapshot.Path})
		}
		if err := e.crash("rollback-restore:" + u.User); err != nil {
			return err
		}
	}
	for _, u := range rb.unplaced {
		errs = append(errs, fmt.Errorf("restore %s: its unit is no longer listed: database not put back", u))
	}
	if rb.To != "" {
		if err := e.activate(ctx, rb.To); err != nil {
			errs = append(errs, err)
		}
		if err := e.crash("rollback-activate"); err != nil {
			return err
		}
	}
	for i, r := range rb.Restores {
		u := r.Member.Unit
		var err error
		switch state[i] {
		case leftAlone:
			continue
		case stopped:
			err = e.Units.Start(ctx, u)
		default:
			err = e.Units.Restart(ctx, u)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("start %s: %w", u.User, err))
			continue
		}
		if err := e.verify(ctx, r.Member.SSOName()); err != nil {
			errs = append(errs, fmt.Errorf("verify %s after rollback: %w", u.User, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		failed := strings.ReplaceAll(err.Error(), "\n", "; ")
		// The freeze is what `updater status` shows after the night: it
		// must not read like a clean rollback's, whose advice is unfreeze.
		fr.Reason = rb.Reason + "; the rollback failed: " + failed
		if werr := e.Freezer().Write(fr); werr != nil {
			err, failed = errors.Join(err, werr), failed+"; "+werr.Error()
		}
		reason := rb.Reason + "; " + failed
		e.emit(ctx, Event{Kind: EventRollbackFailed, Version: rb.To, Reason: reason, Err: err})
		return fmt.Errorf("%w: %s", ErrRollbackFailed, reason)
	}
	e.emit(ctx, Event{Kind: EventRolledBack, Version: rb.Bad, Reason: rb.Reason + "; now on " + rb.To})
	return nil
}

// rollbackRun rolls back the run j records: every unit restarted onto the
// target (the failed one first) gets its prebump database back, so no unit
// is left on a database migrated past the build it will run.
func (e *Engine) rollbackRun(ctx context.Context, j *Journal, fleet []Member) (Result, error) {
	st := e.State()
	to := j.Previous
	if to == "" {
		lg, err := st.LastGood()
		if err != nil {
			return Result{}, err
		}
		to = lg
	}
	byUser := map[string]Member{}
	for _, m := range fleet {
		byUser[m.Unit.User] = m
	}
	users := append([]string{j.Failed}, j.Verified...)
	var restores []Restore
	var unplaced []string
	for _, u := range users {
		m, ok := byUser[u]
		if !ok {
			// Moved onto the target, and gone from the unit list since (a
			// stopped unit systemd unloaded): never reported as put back.
			if _, had := j.Snapshots[u]; had {
				unplaced = append(unplaced, u)
			}
			continue
		}
		r := Restore{Member: m}
		if s, ok := j.Snapshots[u]; ok {
			r.Snapshot = &s
		}
		restores = append(restores, r)
	}
	res := Result{Target: j.Target, Previous: j.Previous, Reason: j.Reason}
	bad := j.Target
	if j.NoDeadEnd {
		bad = ""
	}
	err := e.Rollback(ctx, Rollback{Bad: bad, To: to, Reason: j.Reason, Restores: restores, unplaced: unplaced})
	if errors.Is(err, ErrCrashed) {
		return res, err
	}
	// Deferred users never left the old build: their markers point nowhere now.
	for _, u := range j.Deferred {
		if m, merr := st.Marker(u); merr == nil && m != nil && m.Target == j.Target {
			err = errors.Join(err, st.ClearMarker(u))
		}
	}
	err = errors.Join(err, st.RemoveJournal())
	if err != nil {
		res.Outcome = OutcomeRollbackFailed
		if !errors.Is(err, ErrRollbackFailed) {
			err = fmt.Errorf("%w: %w", ErrRollbackFailed, err)
		}
		// Line adds the alert prefix; one line, as the rollback's own event.
		res.Reason = strings.ReplaceAll(reasonOf(err, ErrRollbackFailed), "\n", "; ")
		return res, err
	}
	res.Outcome = OutcomeRolledBack
	return res, fmt.Errorf("%w: %s", ErrRolledBack, j.Reason)
}
