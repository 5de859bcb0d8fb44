package rollout

import (
	"context"
	"time"
)

// Unit is one user's supervised instance: a name plus opaque fields, so a
// UnitManager over systemd, plain processes or Kubernetes can all fit.
type Unit struct {
	Name   string            // e.g. "t3-serve@emil.service"
	User   string            // the OS user it serves
	Fields map[string]string // manager-specific extras
}

// UnitStatus is what a UnitManager knows of a unit now.
type UnitStatus struct {
	Active      bool
	State       string // e.g. "active", "inactive", "failed", "activating"
	MainPID     int
	ActiveSince time.Time // zero when unknown
}

// UnitManager lists, restarts, stops and starts instances.
type UnitManager interface {
	Units(ctx context.Context) ([]Unit, error)
	Restart(ctx context.Context, u Unit) error
	Stop(ctx context.Context, u Unit) error
	Start(ctx context.Context, u Unit) error
	Status(ctx context.Context, u Unit) (UnitStatus, error)
}

// Release is a version a channel points at, with its publish time when the
// registry knows it.
type Release struct {
	Version   string
	Published time.Time
}

// Registry resolves a channel (a dist-tag such as "nightly") to a release.
type Registry interface {
	Resolve(ctx context.Context, channel string) (Release, error)
}

// Build is one staged version of the binary.
type Build struct {
	Version string
	Dir     string // where it is staged
	Bin     string // path of its t3 executable
}

// Installer stages versions side by side and switches the current one.
// Stage of a version already staged returns it without touching the network,
// so a rollback to last-good is only an Activate.
type Installer interface {
	Current(ctx context.Context) (string, error)
	Stage(ctx context.Context, version string) (Build, error)
	Activate(ctx context.Context, b Build) error
	// Drop removes a staged version that is not current.
	Drop(ctx context.Context, version string) error
}

// ActivationInstaller is implemented by an Installer whose Stage installs
// nothing and whose Activate downloads and installs the build (npm's
// global layout): the health check then runs on a scratch stage
// (Options.CandidateInstaller), and Plan's expected duration counts both
// installs.
type ActivationInstaller interface {
	InstallsAtActivation() bool
}

// HealthReport is the outcome of a health check; Passed false carries Reason.
type HealthReport struct {
	Passed   bool
	Reason   string
	Endpoint string // the exchange endpoint that answered
	Cookie   string // the session cookie name learned
	Schema   int    // ledger max after the check
	Took     time.Duration
}

// HealthChecker runs a staged build on a copy of real data. seed is the path
// of a database snapshot to copy.
type HealthChecker interface {
	Check(ctx context.Context, b Build, seed string) (HealthReport, error)
}

// Verifier checks, through the real dispatch, that a user can pair.
type Verifier interface {
	VerifyPairing(ctx context.Context, user string) error
}
