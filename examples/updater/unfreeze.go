package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
)

// cmdUnfreeze is `updater unfreeze`.
func cmdUnfreeze(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return rolloutCLI{}.unfreeze(ctx, args, stdout, stderr)
}

func (r rolloutCLI) unfreeze(_ context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := r.config("unfreeze", args, stderr, func(*flag.FlagSet, *engineConfig) {})
	if err != nil {
		return usageExit(err)
	}
	e := &rollout.Engine{Options: c.Options}
	was, err := e.Unfreeze()
	if err != nil {
		return cmdError(stderr, "unfreeze", err)
	}
	if was == nil {
		fmt.Fprintln(stdout, "not frozen")
		return 0
	}
	// A rollback's reason in it may quote what a user's instance answered.
	fmt.Fprintf(stdout, "unfrozen (was: %s)\n", t3fleet.Printable(was.String()))
	return 0
}
