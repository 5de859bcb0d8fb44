package main

import (
	"context"
	"net/http"

	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/rollout"
)

// reportingUnits gives a UnitManager the rollout.VersionReporter it lacks:
// each instance is asked which version it runs, on the port its
// /etc/t3-serve/<user>.env names. `updater status` then shows running
// versions, and a failed drain knows the build to go back to.
type reportingUnits struct {
	rollout.UnitManager
	baseURL func(rollout.Member) (string, error)
	client  *http.Client
}

var _ rollout.VersionReporter = reportingUnits{}

// Unwrap returns the wrapped manager, whose other optional methods
// (systemd's ControlGroup) the embedding does not promote.
func (u reportingUnits) Unwrap() rollout.UnitManager { return u.UnitManager }

// RunningVersion implements rollout.VersionReporter.
func (u reportingUnits) RunningVersion(ctx context.Context, unit rollout.Unit) (string, error) {
	base, err := u.baseURL(rollout.Member{Unit: unit})
	if err != nil {
		return "", err
	}
	return t3a.ServerVersion(ctx, u.client, 0, base)
}
