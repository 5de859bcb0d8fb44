package rollout

import (
	"context"
	"log/slog"
	"time"
)

// EventKind names a step of a run.
type EventKind string

// Event kinds, one per step.
const (
	EventLockWait          EventKind = "lock-wait"
	EventLockBusy          EventKind = "lock-busy"
	EventResumed           EventKind = "resumed"
	EventFrozen            EventKind = "frozen"
	EventFreezeExpired     EventKind = "freeze-expired"
	EventResolved          EventKind = "resolved"
	EventPathChecked       EventKind = "path-checked" // a user paired through the dispatch on the current build
	EventPathBroken        EventKind = "path-broken"  // nobody did: stopped before any change
	EventRefused           EventKind = "refused"
	EventBackedUp          EventKind = "backed-up"
	EventBackupSkipped     EventKind = "backup-skipped"
	EventPruneFailed       EventKind = "prune-failed" // old snapshots stay; the run is done
	EventStaged            EventKind = "staged"
	EventHealthChecked     EventKind = "health-checked"
	EventHealthCheckFailed EventKind = "health-check-failed"
	EventActivated         EventKind = "activated"
	EventDeferred          EventKind = "deferred"
	EventSkipped           EventKind = "skipped"
	EventRestarted         EventKind = "restarted"
	EventVerified          EventKind = "verified"
	EventVerifyFailed      EventKind = "verify-failed"
	EventRestored          EventKind = "restored"
	EventRolledBack        EventKind = "rolled-back"
	EventRollbackFailed    EventKind = "rollback-failed"
	EventInterrupted       EventKind = "interrupted" // told to stop mid-step: nobody is blamed
	EventDone              EventKind = "done"
)

// Event is one step of a run, for logs, metrics and alerts.
type Event struct {
	Kind    EventKind
	Time    time.Time
	User    string
	Unit    string
	Version string // the version concerned (target, or what was activated)
	Reason  string
	Took    time.Duration
	Err     error
}

// Log keys.
const (
	LogKeyUser    = "user"
	LogKeyUnit    = "unit"
	LogKeyVersion = "version"
	LogKeyReason  = "reason"
	LogKeyTook    = "took"
	LogKeyError   = "error"
)

// alertMessage is the log message of each kind; the upper-case ones are the
// seed's alert strings, matched by existing alert rules.
func alertMessage(ev Event) (string, slog.Level) {
	switch ev.Kind {
	case EventFrozen:
		return "FROZEN: " + ev.Reason, slog.LevelWarn
	case EventHealthCheckFailed:
		return "HEALTH-CHECK FAILED (" + ev.Reason + ")", slog.LevelError
	case EventPathBroken:
		return "VERIFY-PATH BROKEN: " + ev.Reason, slog.LevelError
	case EventRolledBack:
		return "rolled back " + ev.Version + ": " + ev.Reason, slog.LevelError
	case EventRollbackFailed:
		return "ROLLBACK FAILED: " + ev.Reason, slog.LevelError
	case EventInterrupted:
		return "INTERRUPTED: " + ev.Reason, slog.LevelWarn
	case EventRefused:
		return "refused: " + ev.Reason, slog.LevelInfo
	case EventVerifyFailed:
		return "verify failed", slog.LevelError
	case EventLockWait:
		return "waiting for the lock: " + ev.Reason, slog.LevelInfo
	case EventLockBusy:
		return "another run holds the lock: " + ev.Reason, slog.LevelInfo
	}
	return string(ev.Kind), slog.LevelInfo
}

func (e *Engine) emit(ctx context.Context, ev Event) {
	if ev.Time.IsZero() {
		ev.Time = e.now()
	}
	if e.OnEvent != nil {
		e.OnEvent(ev)
	}
	lg := e.Logger
	if lg == nil {
		return
	}
	msg, lvl := alertMessage(ev)
	var attrs []slog.Attr
	if ev.User != "" {
		attrs = append(attrs, slog.String(LogKeyUser, ev.User))
	}
	if ev.Unit != "" {
		attrs = append(attrs, slog.String(LogKeyUnit, ev.Unit))
	}
	if ev.Version != "" {
		attrs = append(attrs, slog.String(LogKeyVersion, ev.Version))
	}
	if ev.Reason != "" && msg == string(ev.Kind) {
		attrs = append(attrs, slog.String(LogKeyReason, ev.Reason))
	}
	if ev.Took > 0 {
		attrs = append(attrs, slog.Duration(LogKeyTook, ev.Took))
	}
	if ev.Err != nil {
		attrs = append(attrs, slog.String(LogKeyError, ev.Err.Error()))
	}
	lg.LogAttrs(ctx, lvl, msg, attrs...)
}
