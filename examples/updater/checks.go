package main

import (
	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/rollout"
)

// defaultDispatch is where examples/dispatch listens by default.
const defaultDispatch = "http://127.0.0.1:3780"

// wireChecks sets the idle gate (the live database and the process tree,
// failing closed), the
// health checker (a throwaway loopback serve of the staged build on a copy
// of the seed snapshot, scratch under T3_TMPDIR; it picks a free port, so
// T3_SMOKE_PORT is not used) and the verifier (pairing through the dispatch
// at T3_DISPATCH).
func wireChecks(e *rollout.Engine, c engineConfig) error {
	// The same gate as `updater idle`: the live database and, through the
	// unit's main PID and cgroup, its processes (an agent means busy).
	e.Idle = idleGate(e.Units, unitChoice{Kind: unitsSystemd, UserBus: c.UserBus, Template: c.Template},
		idlegate.DBOptions{QuietThreshold: c.Quiet})
	tmp := c.Options.TmpDir
	if tmp == "" {
		tmp = rollout.DefaultTmpDir
	}
	e.Health = t3a.NewHealthChecker(t3a.HealthCheckerOptions{TempDir: tmp, Logger: c.Options.Logger})
	dispatch := c.Dispatch
	if dispatch == "" {
		dispatch = defaultDispatch
	}
	v, err := t3a.NewDispatchVerifier(dispatch, t3a.DispatchVerifierOptions{})
	if err != nil {
		return err
	}
	e.Verifier = v
	return nil
}
