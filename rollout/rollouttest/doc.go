// Package rollouttest provides fakes for the interfaces package rollout
// consumes, for tests of the engine and of anything embedding it.
//
// # Func-field fakes
//
// UnitManager, Registry, Installer, HealthChecker, Verifier, Locator,
// Backuper (statebackup) and IdleOracle (idlegate) each call the func field
// of the same name; a nil func does the harmless thing (success, active,
// idle, passed). Each is checked against its interface at compile time.
//
//	units := &rollouttest.UnitManager{RestartFunc: func(ctx context.Context, u rollout.Unit) error {
//		return errors.New("boom")
//	}}
//
// # Sim
//
// Sim is a small simulated fleet on real files: per-user databases whose
// first line is the schema version, restarts that migrate forward, a build
// older than its database failing pairing, backups as file copies, and
// switches for a failing health check, a failing canary or a busy user.
// Sim.Engine returns a rollout.Engine wired to it.
//
// # What it does not do
//
// It runs no processes and no network: for real parts see adapters/npm/npmtest,
// adapters/supervisor and adapters/t3/t3test.
package rollouttest
