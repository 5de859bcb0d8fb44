// Package systemd is a rollout.UnitManager over systemd's D-Bus API: each
// user's instance is one instance of a template unit, by default
// t3-serve@<user>.service, the seed's layout.
//
// # Which manager
//
//   - DialSystem: the system manager (units in /etc/systemd/system), through
//     the system bus, or directly on /run/systemd/private when root on a
//     machine without a bus daemon. The updater then runs as root.
//   - DialUser: the calling user's own manager, what `systemctl --user`
//     drives: a rootless deployment where one account runs every instance
//     from ~/.config/systemd/user. It uses $XDG_RUNTIME_DIR/systemd/private
//     when present, else the session bus.
//   - DialSocket: any manager's private socket, e.g. a user manager started
//     by a test (see the systemdtest package).
//
// New takes any Client (the handful of go-systemd methods used), so tests can
// fake systemd entirely.
//
// # Semantics
//
// Units lists the loaded instances of the template and maps each back to its
// OS user. Start, Stop and Restart wait for systemd's job and return a
// *JobError (errors.Is ErrJobFailed) unless it ends "done"; Start and Restart
// also report a unit that is not running once its job is done: failed (a
// binary that could not be executed), inactive (a failed Condition*=, a
// process that exited at once) or waiting to auto-restart a process that
// died. A connection lost while a job runs ends the wait with
// ErrDisconnected (the job's result, a signal, would never come). A failed unit is reset (reset-failed) before
// Start and Restart, so a unit a bad build crash-looped into its start limit
// can be restarted onto the last good one. Status reads ActiveState, MainPID and
// ActiveEnterTimestamp. ControlGroup reads the unit's cgroup, which holds
// every process the unit started, even one re-parented away from the main
// process: adapters/proctree uses it to find such agents, which stopping
// the unit would kill. A user name is checked with t3fleet.ValidOSUser
// before it becomes a unit name, so a hostile name never reaches D-Bus.
//
//	m, err := systemd.DialSystem(ctx, systemd.Options{})
//	if err != nil { ... }
//	defer m.Close()
//	err = m.Restart(ctx, rollout.Unit{User: "emil"}) // t3-serve@emil.service
//
// # What it does not do
//
// It does not write, enable or reload unit files, manage the binary the unit
// runs, or read the journal. Health and pairing checks belong to rollout.
package systemd
