// Package supervisor is a rollout.UnitManager that runs each user's
// instance as a plain child process, for machines without systemd: the
// demo, end-to-end tests, a developer's laptop.
//
// Each unit is configured once (UnitSpec: user, command line, environment,
// directory, log file, optional readiness check). The command line is built
// at every start, by Command or from Argv whose first element may be a link
// such as <prefix>/current/bin/t3, so a restart after a version switch runs
// the new build.
//
//	s, err := supervisor.New([]supervisor.UnitSpec{{
//		User:    "emil",
//		Argv:    []string{"/opt/t3/current/bin/t3", "serve", "--port", "3801"},
//		LogFile: "/var/log/t3/emil.log",
//		Ready:   supervisor.ReadyHTTP("http://127.0.0.1:3801/"),
//	}}, supervisor.Options{Logger: logger})
//	defer s.Close()
//	err = s.Start(ctx, rollout.Unit{User: "emil"})
//
// # Semantics
//
// Like systemd's: Start of a running unit is a no-op; Stop sends SIGTERM to
// the unit's process group, SIGKILL after Options.StopTimeout, and returns
// once the process is reaped; Restart is Stop then Start, one operation at a
// time per unit. A process that exits without being asked leaves its unit
// "failed" (MainPID 0) until the next Start or Stop. With a Ready check,
// Start returns only once it passes; meanwhile the unit is "activating", and
// on timeout the process is stopped and the unit is "failed". Anything left
// in the process group when the main process ends is killed. On Linux the
// children get SIGTERM if the supervising process dies.
//
// # What it does not do
//
// It does not restart crashed processes by itself (the watchdog decides
// that), switch users (every unit runs as the supervisor's own user), or
// persist anything: a new Supervisor knows no processes of an old one.
package supervisor
