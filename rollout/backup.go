package rollout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/t3fleet/t3fleet/statebackup"
)

// backupAll takes every user's prebump snapshot. When ctx was cancelled
// with a cause (the staging failed), that cause is the error.
func (e *Engine) backupAll(ctx context.Context, j *Journal, fleet []Member) error {
	label := PrebumpLabelPrefix + j.Target
	n := e.BackupConcurrency
	if n <= 0 {
		n = DefaultBackupConcurrency
	}
	// Up to n snapshots at once: each is mostly waiting on fsyncs, so two
	// overlap well, and the backups are the long step before the canary
	// together with npm's install. The first failure stops the others.
	// Events, the journal and the crash hook stay on this goroutine.
	ctx, cancel := context.WithCancel(ctx)
	type result struct {
		m    Member
		snap statebackup.Snapshot
		err  error
		took time.Duration
	}
	results := make(chan result, len(fleet)) // never blocks a sender
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait() // nothing is left writing once the run goes on or returns
	}()
	sem := make(chan struct{}, n)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, m := range fleet {
			acquired := false
			if ctx.Err() == nil {
				select {
				case sem <- struct{}{}:
					acquired = true
				case <-ctx.Done():
				}
			}
			if ctx.Err() != nil { // stopped: the rest are not started
				if acquired {
					<-sem
				}
				results <- result{m: m, err: context.Cause(ctx)}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				t0 := time.Now()
				snap, err := e.Backups.Backup(ctx, m.Target(j.Previous), label)
				results <- result{m: m, snap: snap, err: err, took: time.Since(t0)}
			}()
		}
	}()
	for range fleet {
		r := <-results
		user := r.m.Unit.User
		snap, err := e.backedUp(ctx, r.m, j.Target, r.snap, r.err, r.took)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, ctx.Err()) {
				return cause // the staging failed and stopped this backup
			}
			return err
		}
		if snap == nil {
			continue
		}
		// Not written to the journal yet: a run that stops in this phase
		// starts over, so the snapshots are first written with the stage
		// step, which saves an fsync pair per user.
		j.Step = "backup:" + user
		j.Snapshots[user] = *snap
		if err := e.crash("backup:" + user); err != nil {
			return err
		}
	}
	return nil
}

// backupLate takes, for a resumed canary, the prebump snapshot of each
// member the crashed run did not back up (a unit added since), before it
// can be moved: a rollback must be able to put every moved unit back. A
// member whose snapshot fails is deferred instead; the drain takes its own
// before it restarts anyone. Each outcome is journalled at once.
func (e *Engine) backupLate(ctx context.Context, j *Journal, fleet []Member) error {
	st := e.State()
	label := PrebumpLabelPrefix + j.Target
	for _, m := range fleet {
		user := m.Unit.User
		if _, ok := j.Snapshots[user]; ok || j.verified(user) || j.deferred(user) {
			continue
		}
		snap, err := e.backup(ctx, m, j.Previous, label, j.Target)
		switch {
		case err == nil && snap == nil:
			continue
		case err == nil:
			if j.Snapshots == nil {
				j.Snapshots = map[string]statebackup.Snapshot{}
			}
			j.Snapshots[user] = *snap
		default:
			if derr := st.Defer(user, j.Target); derr != nil {
				return errors.Join(fmt.Errorf("backup %s: %w", user, err), derr)
			}
			j.Deferred = append(j.Deferred, user)
			e.emit(ctx, Event{Kind: EventDeferred, User: user, Unit: m.Unit.Name, Version: j.Target,
				Reason: fmt.Sprintf("joined after the run's backups, and its own failed: %v", err)})
		}
		if err := st.WriteJournal(j); err != nil {
			return err
		}
	}
	return nil
}

// backup snapshots m's database, which the build from reads, under label,
// and reports it as backedUp does for the move to version to.
func (e *Engine) backup(ctx context.Context, m Member, from, label, to string) (*statebackup.Snapshot, error) {
	t0 := time.Now()
	s, err := e.Backups.Backup(ctx, m.Target(from), label)
	return e.backedUp(ctx, m, to, s, err, time.Since(t0))
}

// backedUp reports how m's backup for version ended: the snapshot, or nil
// when m has no database yet and AllowMissingBackup lets that go, or the
// error (naming the user) that stops the caller.
func (e *Engine) backedUp(ctx context.Context, m Member, version string, snap statebackup.Snapshot, err error, took time.Duration) (*statebackup.Snapshot, error) {
	switch {
	case err == nil:
		e.emit(ctx, Event{Kind: EventBackedUp, User: m.Unit.User, Unit: m.Unit.Name, Version: version, Reason: snap.Path, Took: took})
		return &snap, nil
	case e.AllowMissingBackup && errors.Is(err, statebackup.ErrNoDatabase):
		e.emit(ctx, Event{Kind: EventBackupSkipped, User: m.Unit.User, Unit: m.Unit.Name, Reason: "no database yet"})
		return nil, nil
	}
	return nil, stepError(err, "backup", m.Unit.User, func(e *statebackup.BackupError) string { return e.User })
}

// stepError is err as the failure of the step "<verb> <user>", the words
// the run line and the runbook use, unless err is statebackup.Store's own
// error E for that user, which begins with them already.
func stepError[E error](err error, verb, user string, userOf func(E) string) error {
	if e, ok := errors.AsType[E](err); ok && userOf(e) == user {
		return err
	}
	return fmt.Errorf("%s %s: %w", verb, user, err)
}
