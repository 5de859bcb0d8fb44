package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
)

// cmdFreeze is `updater freeze --reason R [--for 48h]`.
func cmdFreeze(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return rolloutCLI{}.freeze(ctx, args, stdout, stderr)
}

func (r rolloutCLI) freeze(_ context.Context, args []string, stdout, stderr io.Writer) int {
	var reason, who string
	var d time.Duration
	c, err := r.config("freeze", args, stderr, func(fs *flag.FlagSet, _ *engineConfig) {
		fs.StringVar(&reason, "reason", "", "why (required)")
		fs.DurationVar(&d, "for", 0, "expire after this long (default: until unfrozen)")
		fs.StringVar(&who, "who", "", "who freezes (default $SUDO_USER or $USER)")
	})
	if err != nil {
		return usageExit(err)
	}
	if reason == "" {
		return usageError(stderr, "freeze", errors.New("--reason is required"))
	}
	if d < 0 {
		return usageError(stderr, "freeze", errors.New("--for must be positive"))
	}
	if who == "" {
		who = envOr(r.getenv("SUDO_USER"), r.getenv("USER"))
	}
	e := &rollout.Engine{Options: c.Options}
	f, err := e.SetFreeze(reason, who, d)
	if err != nil {
		return cmdError(stderr, "freeze", err)
	}
	// Printed as status prints it.
	fmt.Fprintf(stdout, "FROZEN: %s (%s)\n", t3fleet.Printable(f.String()), e.Freezer().Path)
	return 0
}
