// Command updater is the gated bump of the shared t3 binary and the
// runbook's operations (backups, restore, idle verdicts, freeze, status) as
// subcommands:
//
//	updater <command> [flags]
//
// Each command lives in its own file and is registered with one line in
// commands. Configuration comes from the seed's environment variables (read
// in config.go, engine.go and the migrate-idle and watchdog commands' files;
// see the README and docs/), flags override.
package main
