// Package systemdtest runs a real, isolated `systemd --user` for tests, the
// one way found to work on these machines, so adapters/systemd (and anything that
// embeds it) can be tested against systemd itself rather than a fake.
//
// Start launches the manager in a private mount namespace with a tmpfs on
// /run/systemd holding the /run/systemd/system marker (which lets a user
// manager run without systemd as PID 1), XDG_RUNTIME_DIR in a fresh
// directory, SYSTEMD_UNIT_PATH restricted to a directory holding only the
// test's units plus stand-ins for default.target, basic.target,
// shutdown.target, app.slice, exit.target and systemd-exit.service, and
// generators disabled. It creates its own cgroup directories (unique per
// manager, so concurrent test runs do not collide), waits until the private
// socket answers, and registers a cleanup that exits the manager (which
// stops every unit), kills anything left, and removes the cgroups and files.
// Service processes are real host processes: their MainPID answers kill -0.
//
//	um := systemdtest.Start(t, systemdtest.Options{})
//	um.WriteService(t, "t3-serve@.service", systemdtest.Service{ExecStart: []string{"/usr/bin/sleep", "infinity"}})
//	m, err := systemd.DialSocket(ctx, um.Socket, systemd.Options{})
//
// # Requirements
//
// Root, /lib/systemd/systemd, unshare, mount and a writable cgroup tree.
// Without them Start skips the test, or fails it when T3FLEET_REQUIRE_REAL=1.
//
// # What it does not do
//
// It never boots systemd with its default unit path (that would run the
// distribution's units on the real machine: tmpfiles wiping /tmp, network
// services), never starts a system manager, and has no journal: a unit's
// output goes to a file (UnitLog).
package systemdtest
