// Package t3 adapts the t3 CLI and server to the domain packages: a
// [CLIMinter] that mints pairing credentials by running a command (the
// seed's `sudo -n /usr/local/bin/t3-mint {os_user}` by default), and the
// health checking, version-matched minting and pairing verification the
// updater uses, [ReportingUnits], which asks each instance the build it
// runs, and [EnvironmentProbe], the watchdog's liveness probe.
//
// # Example
//
//	argv, _ := t3.SplitCommand(t3.DefaultMintCommand)
//	m, err := t3.NewCLIMinter(argv, t3.CLIMinterOptions{})
//	cred, err := m.Mint(ctx, t3fleet.Instance{User: "emil.barzin", OSUser: "emil"})
//
// # What it does not do
//
// It never runs a shell: commands are argv, and user names reach them only
// as whole arguments after t3fleet.ValidOSUser. It does not decide when to
// pair (package pairing) nor fake t3 (package t3test).
package t3
