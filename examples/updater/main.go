package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand: a name, a one-line summary and its entry point.
// run gets the arguments after the command name and returns the exit code
// (0 ok, 1 failed, 2 usage).
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands is the subcommand table. To add a command: write its file with a
// func of run's signature, then add one line here.
func commands() []command {
	return []command{
		{"run", "the gated bump: back up, stage, health-check, canary, roll back on failure", cmdRun},
		{"plan", "print what run would do, touching nothing", cmdPlan},
		{"status", "versions, freeze, deferrals and units", cmdStatus},
		{"freeze", "stop bumps (--reason R [--for 48h])", cmdFreeze},
		{"unfreeze", "allow bumps again", cmdUnfreeze},
		{"backup", "snapshot users' state databases ([--user U] [--label L])", cmdBackup},
		{"backups", "list snapshots ([--user U])", cmdBackups},
		{"restore", "restore a user's database (--user U --snapshot PATH|--latest-prebump [--stop])", cmdRestore},
		{"idle", "print each instance's idle verdict ([--user U])", cmdIdle},
		{"migrate-idle", "restart deferred users onto the current build when idle, inside the window", cmdMigrateIdle},
		{"watchdog", "probe running instances; restart a wedged one (N failures, M restarts per window)", cmdWatchdog},
	}
}

func main() {
	// The first SIGTERM or Ctrl-C cancels ctx: the step under way is cut
	// short and blames no build, but a rollback under way is finished.
	// Handling is then given back, so a second one ends the process at
	// once; the journal covers that as it covers a crash.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range cmds {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "updater: unknown command %q\n", args[0])
	usage(stderr, cmds)
	return 2
}

func usage(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "usage: updater <command> [flags]")
	fmt.Fprintln(w, "commands:")
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.name))
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-*s %s\n", width, c.name, c.summary)
	}
	fmt.Fprintln(w, "Run updater <command> -h for its flags.")
}
