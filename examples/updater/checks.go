package main

import (
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/rollout"
)

// wireChecks sets the idle gate, the health checker and the verifier. A
// dependency whose adapter is not in this build stays nil: Run then refuses
// to start (the engine names what is missing) while plan, status, freeze and
// unfreeze still work.
func wireChecks(e *rollout.Engine, c engineConfig) error {
	e.Idle = idlegate.NewDBOracle(idlegate.DBOptions{})
	_ = c
	return nil
}
