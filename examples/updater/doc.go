// Command updater is the gated bump of the shared t3 binary and the
// runbook's operations (backups, restore, idle verdicts, freeze, status) as
// subcommands:
//
//	updater <command> [flags]
//
// Each command lives in its own file and is registered with one line in
// commands. Configuration comes from the seed's environment variables (see
// config.go and the README), flags override.
package main
