package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/t3fleet/t3fleet/statebackup"
)

// Run is one `updater run`: lock, finish a journal, freeze, resolve and gate
// the target, back up, stage, health check, activate, canary, and either
// finish or roll back. Frozen, refused and locked runs return a nil error;
// Result.ExitCode gives the process status either way.
func (e *Engine) Run(ctx context.Context) (Result, error) {
	start := e.now()
	if err := e.check(); err != nil {
		return Result{Outcome: OutcomeFailed, Reason: err.Error()}, err
	}
	lock, busy, err := e.lockOrBusy(ctx, "run")
	if busy != nil {
		return Result{Outcome: OutcomeLocked, Reason: busy.Error()}, nil
	}
	if err != nil {
		return Result{Outcome: OutcomeFailed, Reason: err.Error()}, err
	}
	defer lock.Release()

	res, err := e.run(ctx)
	res.Took = e.now().Sub(start)
	if err != nil && res.Outcome == "" {
		res.Outcome, res.Reason = OutcomeFailed, err.Error()
	}
	return res, err
}

func (e *Engine) run(ctx context.Context) (Result, error) {
	st := e.State()
	// A drain's or the watchdog's restart cut short is finished first: its
	// unit may run the active build unverified, or its rollback be half
	// done under the freeze it wrote.
	if _, _, err := e.finishCycle(ctx); err != nil {
		res := Result{Outcome: OutcomeFailed, Reason: err.Error(), Resumed: true}
		switch {
		case errors.Is(err, ErrRollbackFailed):
			res.Outcome, res.Reason = OutcomeRollbackFailed, reasonOf(err, ErrRollbackFailed)
		case errors.Is(err, ErrRolledBack):
			res.Outcome, res.Reason = OutcomeRolledBack, reasonOf(err, ErrRolledBack)
		}
		return res, err
	}
	j, err := st.Journal()
	if err != nil {
		return Result{}, err
	}
	resumed := false
	if j != nil {
		e.emit(ctx, Event{Kind: EventResumed, Version: j.Target, Reason: "phase " + string(j.Phase) + " step " + j.Step})
		resumed = true
		switch j.Phase {
		case PhasePrepare:
			// Nothing live changed: start over.
			if err := st.RemoveJournal(); err != nil {
				return Result{}, err
			}
		default:
			res, err := e.resume(ctx, j)
			res.Resumed = true
			return res, err
		}
	}

	if fr, err := e.activeFreeze(ctx, e.now()); err != nil {
		return Result{}, err
	} else if fr != nil {
		return Result{Outcome: OutcomeFrozen, Reason: fr.String(), Resumed: resumed}, nil
	}

	current, rel, pinned, err := e.resolve(ctx)
	if err != nil {
		return Result{}, err
	}
	if err := e.gate(current, rel, pinned); err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			e.emit(ctx, Event{Kind: EventRefused, Version: rel.Version, Reason: re.Reason, Err: re.Err})
			return Result{Outcome: OutcomeRefused, Target: rel.Version, Previous: current, Reason: re.Reason, Resumed: resumed}, nil
		}
		return Result{}, err
	}
	started := e.now()
	// Staging changes nothing live (side by side; the global installer
	// stages nothing before Activate), so it starts as soon as the target
	// is known and runs through the path check and the backups: on a real
	// fleet the npm install and the snapshots are the two long steps before
	// the canary. A failed staging cancels the backups' context with its
	// error; a run that stops before the health check stops the staging
	// (a build that finished staging stays for the next run).
	bctx, failBackups := context.WithCancelCause(ctx)
	defer failBackups(nil)
	stage := e.startStage(ctx, rel.Version, failBackups)
	defer stage.stop() // a no-op once the health check has waited for it
	fleet, err := e.Fleet(ctx)
	if err != nil {
		return Result{}, err
	}
	if e.SkipPathCheck {
		e.emit(ctx, Event{Kind: EventPathChecked, Version: current, Reason: "skipped (SkipPathCheck)"})
	} else if err := e.checkPath(ctx, fleet, current,
		"stopped before any change (if the current build itself broke pairing for everyone, run with --skip-path-check)"); err != nil {
		return Result{Target: rel.Version, Previous: current, Resumed: resumed}, err
	}
	j = &Journal{Target: rel.Version, Previous: current, Phase: PhasePrepare, Step: "journal",
		Started: started, Snapshots: map[string]statebackup.Snapshot{}}
	if err := st.WriteJournal(j); err != nil {
		return Result{}, err
	}
	res := Result{Target: j.Target, Previous: current, Resumed: resumed}
	if err := e.crash("journal"); err != nil {
		return res, err
	}
	if err := e.backupAll(bctx, j, fleet); err != nil {
		// Nothing changed yet: the journal goes, the run stops, and with it
		// the staging. A build that finished staging stays for the next run.
		err = fmt.Errorf("%w; stopped before any change", err)
		if rerr := st.RemoveJournal(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return res, err
	}
	if res, err := e.stageAndCheck(ctx, j, stage); err != nil || res.Outcome != "" {
		return res, err
	}
	j.Phase, j.Step = PhaseCanary, "activate"
	if err := st.WriteJournal(j); err != nil {
		return res, err
	}
	if err := e.activate(ctx, j.Target); err != nil {
		return res, err
	}
	if err := e.crash("activate"); err != nil {
		return res, err
	}
	return e.canary(ctx, j, fleet, res)
}

// resolve returns the current version and the release to go to.
func (e *Engine) resolve(ctx context.Context) (current string, rel Release, pinned bool, err error) {
	current, err = e.Installer.Current(ctx)
	if err != nil {
		return "", Release{}, false, fmt.Errorf("current version: %w", err)
	}
	if e.Pin != "" {
		rel = Release{Version: e.Pin}
		pinned = true
	} else {
		if e.Registry == nil {
			return "", Release{}, false, fmt.Errorf("%w: Registry", ErrMissingDependency)
		}
		rel, err = e.Registry.Resolve(ctx, e.track())
		if err != nil {
			return "", Release{}, false, fmt.Errorf("resolve %s: %w", e.track(), err)
		}
	}
	e.emit(ctx, Event{Kind: EventResolved, Version: rel.Version, Reason: fmt.Sprintf("current %s, pinned=%v, channel %s", current, pinned, e.track())})
	return current, rel, pinned, nil
}

// gate reads the dead ends and runs Gate over the resolved target: the one
// decision Run acts on and Plan reports.
func (e *Engine) gate(current string, rel Release, pinned bool) error {
	deadEnds, err := e.State().DeadEndVersions()
	if err != nil {
		return err
	}
	return Gate(GateInput{Current: current, Release: rel, Channel: e.track(), Pinned: pinned,
		DeadEnds: deadEnds, MinAge: e.MinAge, Now: e.now()})
}

// seedSnapshot picks the snapshot that feeds the health check.
func (e *Engine) seedSnapshot(snaps map[string]statebackup.Snapshot) (string, error) {
	if e.SeedUser != "" {
		s, ok := snaps[e.SeedUser]
		if !ok {
			return "", fmt.Errorf("seed user %s has no prebump snapshot", e.SeedUser)
		}
		return s.Path, nil
	}
	users := make([]string, 0, len(snaps))
	for u := range snaps {
		users = append(users, u)
	}
	sort.Strings(users)
	best := ""
	var size int64 = -1
	for _, u := range users {
		if snaps[u].Size > size {
			best, size = snaps[u].Path, snaps[u].Size
		}
	}
	return best, nil
}

// activate makes version the current one (staging it first, which for an
// already-staged version needs no network).
func (e *Engine) activate(ctx context.Context, version string) error {
	b, err := e.Installer.Stage(ctx, version)
	if err != nil {
		return fmt.Errorf("activate %s: stage: %w", version, err)
	}
	if err := e.Installer.Activate(ctx, b); err != nil {
		return fmt.Errorf("activate %s: %w", version, err)
	}
	e.emit(ctx, Event{Kind: EventActivated, Version: version})
	return nil
}

// CanaryOrder sorts the fleet for the canary: users named in order first (in
// that order), then the smallest database first, operator last. size gives a
// member's database size.
func CanaryOrder(fleet []Member, order []string, operator string, size func(Member) int64) []Member {
	out := slices.Clone(fleet)
	rank := func(m Member) int {
		if i := slices.Index(order, m.Unit.User); i >= 0 {
			return i
		}
		if m.Unit.User == operator && operator != "" {
			return len(order) + 1
		}
		return len(order)
	}
	sort.SliceStable(out, func(a, b int) bool {
		ra, rb := rank(out[a]), rank(out[b])
		if ra != rb {
			return ra < rb
		}
		sa, sb := size(out[a]), size(out[b])
		if sa != sb {
			return sa < sb
		}
		return out[a].Unit.User < out[b].Unit.User
	})
	return out
}

func (e *Engine) sizeFunc(snaps map[string]statebackup.Snapshot) func(Member) int64 {
	return func(m Member) int64 {
		if s, ok := snaps[m.Unit.User]; ok {
			return s.Size
		}
		return LiveDBSize(m.Instance)
	}
}

func (e *Engine) canary(ctx context.Context, j *Journal, fleet []Member, res Result) (Result, error) {
	st := e.State()
	// A restart the journal records as under way (the last run stopped
	// there) is finished first, whatever order this run would pick: the
	// next restart's step would overwrite the only record that this user
	// may be on the target already.
	resumed, _ := strings.CutPrefix(j.Step, "restart:")
	order := CanaryOrder(fleet, e.Order, e.OperatorUser, e.sizeFunc(j.Snapshots))
	if i := slices.IndexFunc(order, func(m Member) bool { return m.Unit.User == resumed }); i > 0 {
		order = slices.Concat(order[i:i+1], order[:i], order[i+1:])
	}
	for _, m := range order {
		user := m.Unit.User
		if j.verified(user) || j.deferred(user) {
			continue
		}
		if err := e.interrupted(ctx, m.Unit, "canary turn", ctx.Err()); err != nil {
			return interruptedResult(res, err)
		}
		// A restart under way may have moved the user already: it is
		// finished whatever the idle gate or the unit's state says (the unit
		// was running when it began), or a rollback would not know to
		// restore this user.
		underWay := resumed != "" && user == resumed
		us, err := e.Units.Status(ctx, m.Unit)
		if err != nil {
			return res, fmt.Errorf("status %s: %w", user, err)
		}
		if !us.Active && !underWay {
			e.emit(ctx, Event{Kind: EventSkipped, User: user, Unit: m.Unit.Name, Reason: "not running (" + us.State + "); it starts on the new build"})
			continue
		}
		if underWay {
			e.emit(ctx, Event{Kind: EventResumed, User: user, Unit: m.Unit.Name, Version: j.Target,
				Reason: "its restart was under way when the last run stopped: restarted again, busy or not"})
		}
		if idle, why := e.idleUnless(ctx, m, underWay); !idle {
			if err := e.interrupted(ctx, m.Unit, "idle check", ctx.Err()); err != nil {
				return interruptedResult(res, err) // a stopped check says nothing of the user
			}
			if err := st.DeferSince(user, j.Target, us.ActiveSince); err != nil {
				return res, err
			}
			j.Deferred = append(j.Deferred, user)
			if err := st.WriteJournal(j); err != nil {
				return res, err
			}
			e.emit(ctx, Event{Kind: EventDeferred, User: user, Unit: m.Unit.Name, Version: j.Target, Reason: why})
			continue
		}
		j.Step = "restart:" + user
		if err := st.WriteJournal(j); err != nil {
			return res, err
		}
		if err := e.restartVerify(ctx, m, j.Target); err != nil {
			if errors.Is(err, ErrCrashed) {
				return res, err
			}
			if errors.Is(err, ErrInterrupted) {
				// The journal stays at this step: the next run restarts this user again.
				return interruptedResult(res, err)
			}
			if noVerdict(err) {
				res.Outcome, res.Reason = OutcomeFailed, err.Error()
				return res, err // as above: the journal stays
			}
			j.Phase, j.Failed, j.Reason = PhaseRollback, user, fmt.Sprintf("canary %s failed: %v", user, err)
			j.NoDeadEnd = errors.Is(err, ErrWrongBuild)
			// A journal that cannot be written (its disk full) does not hold
			// the rollback back: that would leave this user on the bad build
			// over a migrated database, unfrozen. The journal on disk still
			// records this restart, which a run cut short here redoes, and
			// fails again, before rolling back itself.
			werr := st.WriteJournal(j)
			if werr != nil {
				werr = fmt.Errorf("rolled back without its journal: %w", werr)
			}
			res, err := e.rollbackRun(ctx, j, fleet)
			return res, errors.Join(err, werr)
		}
		j.Verified = append(j.Verified, user)
		if err := st.WriteJournal(j); err != nil {
			return res, err
		}
		if err := e.crash("verified:" + user); err != nil {
			return res, err
		}
	}
	return e.finish(ctx, j)
}

// interruptedResult ends a canary that ctx cut short (err wraps
// ErrInterrupted); the journal is left as it is.
func interruptedResult(res Result, err error) (Result, error) {
	res.Outcome, res.Reason = OutcomeInterrupted, reasonOf(err, ErrInterrupted)
	return res, err
}

// idleUnless is idle, or true without asking when skip.
func (e *Engine) idleUnless(ctx context.Context, m Member, skip bool) (bool, string) {
	if skip {
		return true, ""
	}
	return e.idle(ctx, m)
}

func (e *Engine) idle(ctx context.Context, m Member) (bool, string) {
	if e.Idle == nil {
		return false, "no idle gate configured"
	}
	v, err := e.Idle.Idle(ctx, m.Instance)
	if err != nil {
		return false, "idle gate: " + err.Error()
	}
	if !v.Idle {
		why := v.Reason
		if why == "" {
			why = fmt.Sprintf("%d active turns", v.ActiveTurns)
		}
		return false, why
	}
	return true, ""
}

func (e *Engine) finish(ctx context.Context, j *Journal) (Result, error) {
	st := e.State()
	j.Phase, j.Step = PhaseDone, "last-good"
	if err := st.WriteJournal(j); err != nil {
		return Result{}, err
	}
	// A build no unit has run yet (all busy or stopped) is activated but not
	// proven: last-good stays, so a failed drain later goes back to it.
	unproven := len(j.Verified) == 0
	if !unproven {
		if err := st.SetLastGood(j.Target); err != nil {
			return Result{}, err
		}
	}
	if err := e.crash("last-good"); err != nil {
		return Result{}, err
	}
	for _, u := range j.Verified {
		if m, err := st.Marker(u); err != nil {
			return Result{}, err
		} else if m != nil && CompareVersions(m.Target, j.Target) <= 0 {
			if err := st.ClearMarker(u); err != nil {
				return Result{}, err
			}
		}
	}
	if err := st.RemoveJournal(); err != nil {
		return Result{}, err
	}
	e.prune(ctx, j)
	res := Result{Outcome: OutcomeDone, Target: j.Target, Previous: j.Previous,
		Restarted: slices.Clone(j.Verified), Deferred: slices.Clone(j.Deferred), Unproven: unproven}
	took := e.now().Sub(j.Started)
	reason := fmt.Sprintf("restarted=%d [%s] deferred=%d [%s]", len(j.Verified), strings.Join(j.Verified, " "), len(j.Deferred), strings.Join(j.Deferred, " "))
	if unproven {
		reason += "; no unit verified " + j.Target + " yet, last-good unchanged"
	}
	e.emit(ctx, Event{Kind: EventDone, Version: j.Target, Took: took, Reason: reason})
	return res, nil
}

// prune applies the retention to the users run j backed up: every bump
// adds a snapshot per user. A failure is reported, not fatal: the run is
// done.
func (e *Engine) prune(ctx context.Context, j *Journal) {
	if e.BackupKeep < 0 || e.Backups == nil {
		return
	}
	for _, u := range slices.Sorted(maps.Keys(j.Snapshots)) {
		if err := e.Backups.Prune(ctx, statebackup.Target{User: u}, e.BackupKeep); err != nil {
			e.emit(ctx, Event{Kind: EventPruneFailed, User: u, Err: err, Reason: "snapshots not pruned"})
		}
	}
}

// resume finishes a journal found at the start of a run.
func (e *Engine) resume(ctx context.Context, j *Journal) (Result, error) {
	switch j.Phase {
	case PhaseDone:
		return e.finish(ctx, j)
	case PhaseCanary:
		fleet, err := e.Fleet(ctx)
		if err != nil {
			return Result{}, err
		}
		if err := e.backupLate(ctx, j, fleet); err != nil {
			return Result{}, err
		}
		if err := e.activate(ctx, j.Target); err != nil {
			return Result{}, err
		}
		return e.canary(ctx, j, fleet, Result{Target: j.Target, Previous: j.Previous})
	case PhaseRollback:
		fleet, err := e.Fleet(ctx)
		if err != nil {
			return Result{}, err
		}
		return e.rollbackRun(ctx, j, fleet)
	}
	return Result{}, fmt.Errorf("resume: %w: phase %q", ErrMalformed, j.Phase)
}
