package main

import (
	"context"
	"fmt"
	"io"

	"github.com/t3fleet/t3fleet/rollout"
)

// cmdStatus is `updater status`.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return rolloutCLI{}.status(ctx, args, stdout, stderr)
}

func (r rolloutCLI) status(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := r.config("status", args, stderr, nil)
	if err != nil {
		return usageExit(err)
	}
	e, closeFn, err := r.wire(ctx, c)
	if err != nil {
		return cmdError(stderr, "status", err)
	}
	defer closeFn()
	// A state file it cannot read fails the command, after everything
	// else it could read: the freeze and the units matter most then.
	s, err := e.Status(ctx)
	for _, l := range s.Lines() {
		fmt.Fprintln(stdout, l)
	}
	printDrainWatchdogStatus(e, stdout, stderr)
	r.printWatchdogUnits(e, s, stdout, stderr)
	if err != nil {
		return cmdError(stderr, "status", err)
	}
	return 0
}

// printWatchdogUnits adds the units the watchdog stands down for, or whose
// probes are failing, read from its counters (T3_WD_STATE_DIR).
func (r rolloutCLI) printWatchdogUnits(e *rollout.Engine, s rollout.Status, stdout, stderr io.Writer) {
	o, err := r.watchdogOptions()
	if err != nil {
		fmt.Fprintf(stderr, "updater status: watchdog: %s\n", errText(err))
		return
	}
	users := make([]string, 0, len(s.Instances))
	for _, is := range s.Instances {
		users = append(users, is.User)
	}
	lines, err := (&rollout.Watchdog{Engine: e, WatchdogOptions: o}).StatusLines(users)
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	if err != nil {
		fmt.Fprintf(stderr, "updater status: watchdog: %s\n", errText(err))
	}
}
