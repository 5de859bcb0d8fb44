package t3

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/t3fleet/t3fleet/rollout"
)

// ReportingUnits gives a rollout.UnitManager the rollout.VersionReporter
// it lacks: each instance is asked which build it runs, at its
// environment endpoint (ServerVersion). That is the running process's own
// answer, so a stale process on the unit's port, or a unit whose command
// does not run the switched binary, shows as the build it really is. The
// engine then checks each restarted instance runs the target, `status`
// shows running versions, and a failed drain knows whom the active build
// holds.
type ReportingUnits struct {
	rollout.UnitManager
	// BaseURL returns the base URL of a unit's instance. Required.
	BaseURL func(u rollout.Unit) (string, error)
	// Client makes the requests; nil means a plain one.
	Client *http.Client
	// Timeout bounds one request; zero means DefaultRequestTimeout.
	Timeout time.Duration
}

var _ rollout.VersionReporter = ReportingUnits{}

// Unwrap returns the wrapped manager, whose other optional methods (such
// as systemd's ControlGroup) the embedding does not promote.
func (u ReportingUnits) Unwrap() rollout.UnitManager { return u.UnitManager }

// RunningVersion implements rollout.VersionReporter.
func (u ReportingUnits) RunningVersion(ctx context.Context, unit rollout.Unit) (string, error) {
	if u.BaseURL == nil {
		return "", errors.New("running version: no BaseURL configured")
	}
	base, err := u.BaseURL(unit)
	if err != nil {
		return "", err
	}
	return ServerVersion(ctx, u.Client, u.Timeout, base)
}
