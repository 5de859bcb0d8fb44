package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/t3fleet/t3fleet/rollout"
)

// cmdMigrateIdle is `updater migrate-idle`: drain the deferral markers
// (restart idle deferred units onto the current build inside the window).
func cmdMigrateIdle(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return rolloutCLI{}.migrateIdle(ctx, args, stdout, stderr)
}

func (r rolloutCLI) migrateIdle(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o rollout.DrainOptions
	window := envOr(r.getenv("T3_MIGRATE_WINDOW"), rollout.DefaultDrainWindow.String())
	stale := rollout.DefaultStaleMarkerAge
	c, err := r.config("migrate-idle", args, stderr, func(fs *flag.FlagSet, c *engineConfig) {
		fs.StringVar(&window, "window", window, "local time window for restarts, HH:MM-HH:MM (wraps midnight), or always (T3_MIGRATE_WINDOW)")
		fs.DurationVar(&stale, "stale-after", stale, "report deferral markers older than this")
		wdUnitFlags(fs, c)
		fs.DurationVar(&c.Options.LockWait, "lock-wait", rollout.DefaultLockWait, "how long to wait for another run holding the lock")
	})
	if err != nil {
		return usageExit(err)
	}
	if o.Window, err = rollout.ParseWindow(window); err != nil {
		return usageError(stderr, "migrate-idle", err)
	}
	o.StaleAfter = stale
	c.Options.Logger = textLogger(stdout)
	e, closeFn, err := r.wire(ctx, c)
	if err != nil {
		return cmdError(stderr, "migrate-idle", err)
	}
	defer closeFn()
	res, err := e.MigrateIdle(ctx, o)
	fmt.Fprintln(stdout, res.Line())
	if err != nil && res.ExitCode() != 0 {
		cmdError(stderr, "migrate-idle", err)
	}
	return res.ExitCode()
}

// wdUnitFlags are the flags that say where the fleet's units and homes are.
func wdUnitFlags(fs *flag.FlagSet, c *engineConfig) {
	fs.BoolVar(&c.UserBus, "user-bus", false, "manage units on the systemd user manager")
	fs.StringVar(&c.Template, "template", c.Template, "systemd template unit of the fleet")
	fs.StringVar(&c.HomeRoot, "home-root", c.HomeRoot, "parent of the users' homes (T3_HOME_ROOT)")
	fs.StringVar(&c.Installer, "installer", c.Installer, "side-by-side or global (the seed's npm i -g layout)")
	fs.StringVar(&c.Prefix, "prefix", c.Prefix, "side-by-side install prefix (T3_PREFIX)")
}

// printDrainWatchdogStatus adds the drainer's and the watchdog's lines to
// `updater status`: stale deferrals and suspect builds.
func printDrainWatchdogStatus(e *rollout.Engine, stdout, stderr io.Writer) {
	lines, err := e.DrainWatchdogLines(0)
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	if err != nil {
		fmt.Fprintf(stderr, "updater status: drain/watchdog: %s\n", errText(err))
	}
}
