package main

import (
	"context"
	"io"
)

// cmdRun is `updater run`: the gated bump (T3_DRY_RUN=1: the plan).
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return rolloutCLI{}.run(ctx, args, stdout, stderr)
}

func (r rolloutCLI) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := r.config("run", args, stderr, nil)
	if err != nil {
		return usageExit(err)
	}
	if c.DryRun {
		return r.printPlan(ctx, c, stdout, stderr)
	}
	c.Options.Logger = textLogger(stdout)
	e, closeFn, err := r.wire(ctx, c)
	if err != nil {
		return cmdError(stderr, "run", err)
	}
	defer closeFn()
	res, err := e.Run(ctx)
	if err != nil && res.Outcome == "" {
		return cmdError(stderr, "run", err)
	}
	io.WriteString(stdout, res.Line()+"\n")
	if err != nil && res.ExitCode() != 0 {
		cmdError(stderr, "run", err)
	}
	return res.ExitCode()
}
