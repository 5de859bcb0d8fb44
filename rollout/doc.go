// Package rollout is the gated bump of a shared binary that many per-user
// instances run: plan, back up, stage side by side, health-check on a copy
// of real data, activate, canary one instance at a time (deferring busy
// ones), and on the first failure restore that user's data, switch back,
// dead-end the version and freeze the fleet.
//
// # The run
//
// [Engine.Run] is one `updater run`: it takes the state directory's [Lock],
// finishes a [Journal] left by a crash, honours a [Freeze], resolves the
// target (a pin or a [Registry] channel) and passes it through [Gate], backs
// up every user (label "prebump-<target>") while staging the target with
// the [Installer] (staging changes nothing live), runs the [HealthChecker] on a copy of the seed user's
// snapshot, activates, and restarts each running unit in [CanaryOrder],
// verifying pairing with the [Verifier]. A busy unit (the idle gate says no)
// gets a deferral marker instead. Each step is an [Event] (Options.OnEvent)
// and a log line through Options.Logger carrying the seed's alert strings:
// "FROZEN", "HEALTH-CHECK FAILED (...)", "rolled back", "ROLLBACK FAILED".
//
// # Reusable pieces
//
// The idle drainer and the watchdog use [Engine.Lock], [Engine.Fleet],
// [Engine.Cycle] (backup -> restart -> verify -> recover for one unit) and
// [Engine.Rollback]; [State] and [FreezeFile] are the seed-compatible files.
//
// # Example
//
//	e := &rollout.Engine{Units: units, Registry: reg, Installer: inst,
//		Health: hc, Verifier: ver, Backups: store, Idle: gate,
//		Options: rollout.Options{StateDir: "/var/lib/t3-autoupdate"}}
//	res, err := e.Run(ctx)
//	fmt.Println(res.Line())
//	os.Exit(res.ExitCode())
//
// # What it does not do
//
// It never execs, talks to systemd or npm: the adapters do, behind the
// interfaces declared in interfaces.go. It does not pick the idle policy
// (package idlegate) or take snapshots itself (package statebackup).
// rollouttest has fakes and a simulated fleet for tests.
package rollout
