package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/t3fleet/t3fleet/rollout"
)

// cmdPlan is `updater plan [--check-candidate]`: what run would do, changing nothing.
func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return rolloutCLI{}.plan(ctx, args, stdout, stderr)
}

func (r rolloutCLI) plan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := r.config("plan", args, stderr, func(fs *flag.FlagSet, c *engineConfig) {
		fs.BoolVar(&c.Check, "check-candidate", false, "also stage the target in a temp dir and health-check it")
	})
	if err != nil {
		return usageExit(err)
	}
	return r.printPlan(ctx, c, stdout, stderr)
}

func (r rolloutCLI) printPlan(ctx context.Context, c engineConfig, stdout, stderr io.Writer) int {
	e, closeFn, err := r.wire(ctx, c)
	if err != nil {
		return cmdError(stderr, "plan", err)
	}
	defer closeFn()
	p, err := e.Plan(ctx, rollout.PlanOptions{CheckCandidate: c.Check})
	if err != nil {
		return cmdError(stderr, "plan", err)
	}
	for _, l := range p.Lines() {
		fmt.Fprintln(stdout, l)
	}
	if p.Candidate != nil && !p.Candidate.Passed {
		return 1
	}
	return 0
}
