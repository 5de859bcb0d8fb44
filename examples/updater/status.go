package main

import (
	"context"
	"fmt"
	"io"
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
	s, err := e.Status(ctx)
	if err != nil {
		return cmdError(stderr, "status", err)
	}
	for _, l := range s.Lines() {
		fmt.Fprintln(stdout, l)
	}
	printDrainWatchdogStatus(e, stdout, stderr)
	return 0
}
