package rollouttest

import (
	"context"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

var (
	_ rollout.UnitManager   = (*UnitManager)(nil)
	_ rollout.Registry      = (*Registry)(nil)
	_ rollout.Installer     = (*Installer)(nil)
	_ rollout.HealthChecker = (*HealthChecker)(nil)
	_ rollout.Verifier      = (*Verifier)(nil)
	_ rollout.Locator       = (*Locator)(nil)
	_ statebackup.Backuper  = (*Backuper)(nil)
	_ idlegate.IdleOracle   = (*IdleOracle)(nil)
)

// UnitManager is a func-field rollout.UnitManager.
type UnitManager struct {
	UnitsFunc   func(ctx context.Context) ([]rollout.Unit, error)
	RestartFunc func(ctx context.Context, u rollout.Unit) error
	StopFunc    func(ctx context.Context, u rollout.Unit) error
	StartFunc   func(ctx context.Context, u rollout.Unit) error
	StatusFunc  func(ctx context.Context, u rollout.Unit) (rollout.UnitStatus, error)
	// RunningVersionFunc backs the optional rollout.VersionReporter.
	RunningVersionFunc func(ctx context.Context, u rollout.Unit) (string, error)
}

// RunningVersion calls RunningVersionFunc (nil: "").
func (m *UnitManager) RunningVersion(ctx context.Context, u rollout.Unit) (string, error) {
	if m.RunningVersionFunc == nil {
		return "", nil
	}
	return m.RunningVersionFunc(ctx, u)
}

// Units calls UnitsFunc (nil: no units).
func (m *UnitManager) Units(ctx context.Context) ([]rollout.Unit, error) {
	if m.UnitsFunc == nil {
		return nil, nil
	}
	return m.UnitsFunc(ctx)
}

// Restart calls RestartFunc (nil: success).
func (m *UnitManager) Restart(ctx context.Context, u rollout.Unit) error {
	if m.RestartFunc == nil {
		return nil
	}
	return m.RestartFunc(ctx, u)
}

// Stop calls StopFunc (nil: success).
func (m *UnitManager) Stop(ctx context.Context, u rollout.Unit) error {
	if m.StopFunc == nil {
		return nil
	}
	return m.StopFunc(ctx, u)
}

// Start calls StartFunc (nil: success).
func (m *UnitManager) Start(ctx context.Context, u rollout.Unit) error {
	if m.StartFunc == nil {
		return nil
	}
	return m.StartFunc(ctx, u)
}

// Status calls StatusFunc (nil: active).
func (m *UnitManager) Status(ctx context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
	if m.StatusFunc == nil {
		return rollout.UnitStatus{Active: true, State: "active"}, nil
	}
	return m.StatusFunc(ctx, u)
}

// Registry is a func-field rollout.Registry.
type Registry struct {
	ResolveFunc func(ctx context.Context, channel string) (rollout.Release, error)
}

// Resolve calls ResolveFunc (nil: an empty release).
func (r *Registry) Resolve(ctx context.Context, channel string) (rollout.Release, error) {
	if r.ResolveFunc == nil {
		return rollout.Release{}, nil
	}
	return r.ResolveFunc(ctx, channel)
}

// Installer is a func-field rollout.Installer.
type Installer struct {
	CurrentFunc  func(ctx context.Context) (string, error)
	StageFunc    func(ctx context.Context, version string) (rollout.Build, error)
	ActivateFunc func(ctx context.Context, b rollout.Build) error
	DropFunc     func(ctx context.Context, version string) error
}

// Current calls CurrentFunc (nil: "").
func (i *Installer) Current(ctx context.Context) (string, error) {
	if i.CurrentFunc == nil {
		return "", nil
	}
	return i.CurrentFunc(ctx)
}

// Stage calls StageFunc (nil: a Build of that version).
func (i *Installer) Stage(ctx context.Context, version string) (rollout.Build, error) {
	if i.StageFunc == nil {
		return rollout.Build{Version: version}, nil
	}
	return i.StageFunc(ctx, version)
}

// Activate calls ActivateFunc (nil: success).
func (i *Installer) Activate(ctx context.Context, b rollout.Build) error {
	if i.ActivateFunc == nil {
		return nil
	}
	return i.ActivateFunc(ctx, b)
}

// Drop calls DropFunc (nil: success).
func (i *Installer) Drop(ctx context.Context, version string) error {
	if i.DropFunc == nil {
		return nil
	}
	return i.DropFunc(ctx, version)
}

// HealthChecker is a func-field rollout.HealthChecker.
type HealthChecker struct {
	CheckFunc func(ctx context.Context, b rollout.Build, seed string) (rollout.HealthReport, error)
}

// Check calls CheckFunc (nil: passed).
func (h *HealthChecker) Check(ctx context.Context, b rollout.Build, seed string) (rollout.HealthReport, error) {
	if h.CheckFunc == nil {
		return rollout.HealthReport{Passed: true}, nil
	}
	return h.CheckFunc(ctx, b, seed)
}

// Verifier is a func-field rollout.Verifier.
type Verifier struct {
	VerifyPairingFunc func(ctx context.Context, user string) error
}

// VerifyPairing calls VerifyPairingFunc (nil: success).
func (v *Verifier) VerifyPairing(ctx context.Context, user string) error {
	if v.VerifyPairingFunc == nil {
		return nil
	}
	return v.VerifyPairingFunc(ctx, user)
}

// Locator is a func-field rollout.Locator.
type Locator struct {
	LocateFunc func(ctx context.Context, u rollout.Unit) (t3fleet.Instance, error)
}

// Locate calls LocateFunc (nil: an instance with only the user set).
func (l *Locator) Locate(ctx context.Context, u rollout.Unit) (t3fleet.Instance, error) {
	if l.LocateFunc == nil {
		return t3fleet.Instance{User: u.User, OSUser: u.User}, nil
	}
	return l.LocateFunc(ctx, u)
}

// Backuper is a func-field statebackup.Backuper.
type Backuper struct {
	BackupFunc  func(ctx context.Context, t statebackup.Target, label string) (statebackup.Snapshot, error)
	RestoreFunc func(ctx context.Context, t statebackup.Target, s statebackup.Snapshot) error
	ListFunc    func(ctx context.Context, t statebackup.Target) ([]statebackup.Snapshot, error)
	PruneFunc   func(ctx context.Context, t statebackup.Target, keep int) error
}

// Backup calls BackupFunc (nil: a snapshot with only the label and user set).
func (b *Backuper) Backup(ctx context.Context, t statebackup.Target, label string) (statebackup.Snapshot, error) {
	if b.BackupFunc == nil {
		return statebackup.Snapshot{User: t.User, Label: label}, nil
	}
	return b.BackupFunc(ctx, t, label)
}

// Restore calls RestoreFunc (nil: success).
func (b *Backuper) Restore(ctx context.Context, t statebackup.Target, s statebackup.Snapshot) error {
	if b.RestoreFunc == nil {
		return nil
	}
	return b.RestoreFunc(ctx, t, s)
}

// List calls ListFunc (nil: none).
func (b *Backuper) List(ctx context.Context, t statebackup.Target) ([]statebackup.Snapshot, error) {
	if b.ListFunc == nil {
		return nil, nil
	}
	return b.ListFunc(ctx, t)
}

// Prune calls PruneFunc (nil: success).
func (b *Backuper) Prune(ctx context.Context, t statebackup.Target, keep int) error {
	if b.PruneFunc == nil {
		return nil
	}
	return b.PruneFunc(ctx, t, keep)
}

// IdleOracle is a func-field idlegate.IdleOracle.
type IdleOracle struct {
	IdleFunc func(ctx context.Context, in t3fleet.Instance) (idlegate.Verdict, error)
}

// Idle calls IdleFunc (nil: idle).
func (o *IdleOracle) Idle(ctx context.Context, in t3fleet.Instance) (idlegate.Verdict, error) {
	if o.IdleFunc == nil {
		return idlegate.Verdict{Idle: true, Reason: "fake: idle"}, nil
	}
	return o.IdleFunc(ctx, in)
}
