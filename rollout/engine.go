package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/statebackup"
)

// Defaults for Options.
const (
	DefaultTrack         = "nightly"
	DefaultVerifyTimeout = 90 * time.Second
	DefaultHealthTimeout = 3 * time.Minute
	DefaultTmpDir        = "/var/tmp"
	// DefaultBackupConcurrency snapshots are taken at once before a bump.
	DefaultBackupConcurrency = 2
	// PrebumpLabelPrefix + target is the label of the backups a run takes.
	PrebumpLabelPrefix = "prebump-"
)

// Sentinels for the failures a caller branches on (exit 1).
var (
	ErrHealthCheckFailed = errors.New("HEALTH-CHECK FAILED")
	// ErrPathBroken: nobody pairs through the dispatch on the current
	// build, so a run stops before anything changes.
	ErrPathBroken     = errors.New("VERIFY-PATH BROKEN")
	ErrRolledBack     = errors.New("rolled back")
	ErrRollbackFailed = errors.New("ROLLBACK FAILED")
	// ErrInterrupted: the run's context ended (the updater was told to
	// stop) during a restart or verification; it says nothing about the
	// build, and the journal stays for the next run to finish.
	ErrInterrupted = errors.New("INTERRUPTED")
	// ErrUnitManager marks a UnitManager's failure that is not the unit's
	// own (the bus or the manager gone, an unknown unit): implementations
	// wrap it. The engine then blames no build, as for ErrInterrupted.
	ErrUnitManager = errors.New("unit manager failed")
	// ErrWrongBuild: after a restart onto a build, the instance answering
	// reports another one (a stale process on its port, or a unit whose
	// command does not run the switched binary). No build is blamed (no
	// dead end), but the run rolls back and freezes: the next run would
	// meet the same, and a person must look.
	ErrWrongBuild        = errors.New("the instance runs another build")
	ErrCrashed           = errors.New("crash injected")
	ErrMissingDependency = errors.New("engine dependency missing")
)

// reasonOf is err's text without the alert prefix that sentinel gives it
// ("ROLLBACK FAILED: ..."): a Result's Line adds the prefix itself.
func reasonOf(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}

// Options tune an Engine; the zero value works.
type Options struct {
	StateDir   string // default DefaultStateDir
	FreezeFile string // default DefaultFreezeFile
	Pin        string // a version to go to; tracking off
	Track      string // channel; default DefaultTrack
	// MinAge refuses a target published less than this long ago, or whose
	// publish time is unknown (ErrTooYoung); zero turns the check off, and
	// a Pin skips it.
	MinAge time.Duration
	// AllowMissingBackup lets a user with no database yet go without a backup.
	AllowMissingBackup bool
	// BackupConcurrency is how many prebump snapshots are taken at once;
	// zero means DefaultBackupConcurrency. 1 takes them one by one, the
	// gentlest on a disk the instances keep busy.
	BackupConcurrency int
	// BackupKeep: a finished run prunes the snapshots of the users it
	// backed up to this many per kind (the newest prebump always stays);
	// 0 means statebackup.DefaultKeep, negative keeps everything.
	BackupKeep int
	// SkipPathCheck lets a run start although nobody pairs through the
	// dispatch on the current build: for a current build that broke pairing
	// for everyone, which only a bump can fix. The canary still verifies
	// each restart.
	SkipPathCheck bool
	// SeedUser's newest prebump snapshot feeds the health check; default the
	// user with the largest database.
	SeedUser string
	// Order puts these users first in the canary, in this order; the rest
	// follow smallest database first, OperatorUser last.
	Order []string
	// OperatorUser is the operator's own user, restarted last.
	OperatorUser string
	LockWait     time.Duration // default DefaultLockWait; negative: try once
	// VerifyTimeout bounds one VerifyPairing; default DefaultVerifyTimeout.
	VerifyTimeout time.Duration
	HealthTimeout time.Duration // default DefaultHealthTimeout
	TmpDir        string        // scratch for --check-candidate; default DefaultTmpDir
	// CandidateInstaller returns an installer staging into dir, for Plan's
	// candidate check; nil disables it.
	CandidateInstaller func(dir string) Installer
	Logger             *slog.Logger // nil: no logging
	// OnEvent, when set, is called with every step's Event before it is
	// logged.
	OnEvent func(Event)
	// CrashAfter, when it returns true for a step name, makes the run stop
	// right there with ErrCrashed, leaving the journal as a dead process would.
	CrashAfter func(step string) bool
	// Now is the engine's clock; nil means time.Now.
	Now func() time.Time
	Who string // recorded in a freeze this engine writes; default "t3fleet updater"
}

// Engine is the gated bump. Fill the dependencies and Options; nil Idle
// means every unit is treated as busy-unknown (deferred), so set it.
type Engine struct {
	Units     UnitManager
	Registry  Registry
	Installer Installer
	Health    HealthChecker
	Verifier  Verifier
	Backups   statebackup.Backuper
	Idle      idlegate.IdleOracle
	Locator   Locator // default HomeLocator{}
	Options
}

// Outcome says how a run ended.
type Outcome string

// Outcomes of Run.
const (
	OutcomeDone              Outcome = "done"
	OutcomeFrozen            Outcome = "frozen"
	OutcomeRefused           Outcome = "refused"
	OutcomeLocked            Outcome = "locked"
	OutcomeHealthCheckFailed Outcome = "health-check-failed"
	OutcomeRolledBack        Outcome = "rolled-back"
	OutcomeRollbackFailed    Outcome = "rollback-failed"
	OutcomeInterrupted       Outcome = "interrupted" // stopped mid-canary; the journal says where
	OutcomeFailed            Outcome = "failed"      // an error stopped the run before any change
)

// Result is what a run did.
type Result struct {
	Outcome   Outcome
	Target    string
	Previous  string
	Reason    string // for frozen, refused, locked and failures
	Resumed   bool   // a journal was finished first
	Restarted []string
	Deferred  []string
	// Unproven: the target is active but no unit verified it (all deferred
	// or stopped), so last-good was left as it was.
	Unproven bool
	Took     time.Duration
}

// ExitCode is the process exit status for the result: 0 for done, frozen,
// refused and locked; 1 otherwise.
func (r Result) ExitCode() int {
	switch r.Outcome {
	case OutcomeDone, OutcomeFrozen, OutcomeRefused, OutcomeLocked:
		return 0
	}
	return 1
}

// Line is the one-line summary a command prints (the journal's line of
// `updater run`). Versions and the reason go through t3fleet.Printable: a
// reason may quote what a user's instance answered or their idle gate's
// verdict, and a rollback's reason is read back from the journal.
func (r Result) Line() string {
	q := t3fleet.Printable
	switch r.Outcome {
	case OutcomeDone:
		s := fmt.Sprintf("done: %s -> %s restarted=%d deferred=%d took=%s",
			q(r.Previous), q(r.Target), len(r.Restarted), len(r.Deferred), r.Took.Round(time.Millisecond))
		if r.Unproven {
			s += " (no unit verified it yet: last-good unchanged)"
		}
		return s
	case OutcomeFrozen:
		return "FROZEN: " + q(r.Reason)
	case OutcomeRefused:
		return "refused: " + q(r.Reason)
	case OutcomeLocked:
		return "another run holds the lock: " + q(r.Reason)
	case OutcomeHealthCheckFailed:
		return "HEALTH-CHECK FAILED (" + q(r.Reason) + ")"
	case OutcomeRolledBack:
		return "rolled back " + q(r.Target) + ": " + q(r.Reason)
	case OutcomeRollbackFailed:
		return "ROLLBACK FAILED: " + q(r.Reason)
	case OutcomeInterrupted:
		return "INTERRUPTED: " + q(r.Reason)
	}
	return "failed: " + q(r.Reason)
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// State returns the engine's state directory.
func (e *Engine) State() State {
	if e.StateDir == "" {
		return State{Dir: DefaultStateDir}
	}
	return State{Dir: e.StateDir}
}

// Freezer returns the engine's freeze file.
func (e *Engine) Freezer() FreezeFile {
	if e.FreezeFile == "" {
		return FreezeFile{Path: DefaultFreezeFile}
	}
	return FreezeFile{Path: e.FreezeFile}
}

// activeFreeze reads the freeze file and returns the freeze that holds at
// now, reporting it (EventFrozen); an expired one is reported
// (EventFreezeExpired) and ignored (nil).
func (e *Engine) activeFreeze(ctx context.Context, now time.Time) (*Freeze, error) {
	fr, err := e.Freezer().Read()
	if err != nil || fr == nil {
		return nil, err
	}
	if fr.Expired(now) {
		e.emit(ctx, Event{Kind: EventFreezeExpired, Reason: fr.String()})
		return nil, nil
	}
	e.emit(ctx, Event{Kind: EventFrozen, Reason: fr.String()})
	return fr, nil
}

func (e *Engine) track() string {
	if e.Track == "" {
		return DefaultTrack
	}
	return e.Track
}

func (e *Engine) locator() Locator {
	if e.Locator == nil {
		return HomeLocator{}
	}
	return e.Locator
}

func (e *Engine) who() string {
	if e.Who == "" {
		return "t3fleet updater"
	}
	return e.Who
}

func (e *Engine) crash(step string) error {
	if e.CrashAfter != nil && e.CrashAfter(step) {
		return fmt.Errorf("after %s: %w", step, ErrCrashed)
	}
	return nil
}

func (e *Engine) check() error {
	var missing []string
	if e.Units == nil {
		missing = append(missing, "Units")
	}
	if e.Installer == nil {
		missing = append(missing, "Installer")
	}
	if e.Backups == nil {
		missing = append(missing, "Backups")
	}
	if e.Verifier == nil {
		missing = append(missing, "Verifier")
	}
	if e.Health == nil {
		missing = append(missing, "Health")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %v", ErrMissingDependency, missing)
	}
	return nil
}

// Lock takes the state directory's lock for command ("run", "migrate-idle",
// "watchdog"), waiting LockWait; a wait begins with EventLockWait naming
// the holder. A busy lock returns a *LockedError.
func (e *Engine) Lock(ctx context.Context, command string) (*Lock, error) {
	wait := e.LockWait
	if wait == 0 {
		wait = DefaultLockWait
	} else if wait < 0 {
		wait = 0
	}
	st := e.State()
	if err := mkdirState(st.Dir); err != nil {
		return nil, err
	}
	path := filepath.Join(st.Dir, LockFile)
	l, err := AcquireLock(ctx, path, command, 0)
	var busy *LockedError
	if wait == 0 || !errors.As(err, &busy) {
		return l, err
	}
	e.emit(ctx, Event{Kind: EventLockWait, Reason: fmt.Sprintf("%s (up to %s)", busy.Holder, wait)})
	return AcquireLock(ctx, path, command, wait)
}

// lockOrBusy is Lock for the commands that stand down on a busy lock: busy
// is the holder (reported as EventLockBusy), err any other failure.
func (e *Engine) lockOrBusy(ctx context.Context, command string) (lock *Lock, busy *LockedError, err error) {
	lock, err = e.Lock(ctx, command)
	if errors.As(err, &busy) {
		e.emit(ctx, Event{Kind: EventLockBusy, Reason: busy.Holder})
		return nil, busy, nil
	}
	return lock, nil, err
}

// Member is one unit of the fleet and the instance it serves.
type Member struct {
	Unit     Unit
	Instance t3fleet.Instance
}

// Fleet lists the units and locates their instances.
func (e *Engine) Fleet(ctx context.Context) ([]Member, error) {
	out, failed, err := e.fleetEach(ctx)
	if err != nil {
		return nil, err
	}
	if len(failed) > 0 {
		return nil, failed[0].Err
	}
	return out, nil
}

// UnitError is a unit Fleet could not place.
type UnitError struct {
	Unit Unit
	Err  error
}

// fleetEach is Fleet, with the units it could not place (an invalid name,
// a Locate failure) set apart instead of failing it; err is the listing's.
func (e *Engine) fleetEach(ctx context.Context) ([]Member, []UnitError, error) {
	units, err := e.Units.Units(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list units: %w", err)
	}
	out := make([]Member, 0, len(units))
	var failed []UnitError
	for _, u := range units {
		if err := t3fleet.ValidOSUser(u.User); err != nil {
			failed = append(failed, UnitError{Unit: u, Err: fmt.Errorf("unit %s: %w", u.Name, err)})
			continue
		}
		in, err := e.locator().Locate(ctx, u)
		if err != nil {
			failed = append(failed, UnitError{Unit: u, Err: fmt.Errorf("locate %s: %w", u.User, err)})
			continue
		}
		if in.OSUser == "" {
			in.OSUser = u.User
		}
		out = append(out, Member{Unit: u, Instance: in})
	}
	return out, failed, nil
}

// Target returns the backup target of a member.
func (m Member) Target(version string) statebackup.Target {
	return statebackup.Target{User: m.Unit.User, UserdataDir: UserdataDir(m.Instance), Version: version}
}
