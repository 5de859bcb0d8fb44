package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/rollout"
)

// cmdWatchdog is `updater watchdog`: one probe round over the running
// instances (a timer runs it every minute).
func cmdWatchdog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return rolloutCLI{}.watchdog(ctx, args, stdout, stderr)
}

func (r rolloutCLI) watchdog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := r.watchdogOptions()
	if err != nil {
		return usageError(stderr, "watchdog", err)
	}
	c, err := r.config("watchdog", args, stderr, func(fs *flag.FlagSet, c *engineConfig) {
		fs.StringVar(&o.Dir, "counters-dir", o.Dir, "counters, on tmpfs so they reset on boot (T3_WD_STATE_DIR)")
		fs.DurationVar(&o.Grace, "grace", o.Grace, "leave a unit up less than this alone (T3_WD_GRACE)")
		fs.IntVar(&o.Failures, "failures", o.Failures, "consecutive failed probes before a restart (T3_WD_FAILURES)")
		fs.IntVar(&o.MaxRestarts, "max-restarts", o.MaxRestarts, "restarts per window before WATCHDOG-EXHAUSTED (T3_WD_MAX_RESTARTS)")
		fs.DurationVar(&o.Window, "window", o.Window, "the trailing window of max-restarts (T3_WD_WINDOW)")
		fs.DurationVar(&o.ProbeTimeout, "probe-timeout", o.ProbeTimeout, "one probe's timeout (T3_WD_TIMEOUT)")
		fs.StringVar(&c.EnvDir, "env-dir", c.EnvDir, "where <user>.env holds T3_PORT (T3_ENV_DIR)")
		wdUnitFlags(fs, c)
		// A minute timer must not queue behind a long run: try the lock once.
		fs.DurationVar(&c.Options.LockWait, "lock-wait", 0, "how long to wait for another run holding the lock (0: try once)")
	})
	if err != nil {
		return usageExit(err)
	}
	c.Options.Logger = textLogger(stdout)
	e, closeFn, err := r.wire(ctx, c)
	if err != nil {
		return cmdError(stderr, "watchdog", err)
	}
	defer closeFn()
	wd := &rollout.Watchdog{Engine: e, WatchdogOptions: o, Probe: t3a.EnvironmentProbe{
		BaseURL: hostfiles.EnvFileBaseURL(c.EnvDir), Client: &http.Client{}}}
	res, err := wd.Tick(ctx)
	for _, l := range res.Lines() {
		fmt.Fprintln(stdout, l)
	}
	if err != nil {
		return cmdError(stderr, "watchdog", err)
	}
	return 0
}

// watchdogOptions are the watchdog's settings from the environment
// (T3_WD_*), its defaults otherwise; the watchdog's flags override them.
func (r rolloutCLI) watchdogOptions() (rollout.WatchdogOptions, error) {
	o := rollout.WatchdogOptions{Dir: envOr(r.getenv("T3_WD_STATE_DIR"), rollout.DefaultWatchdogDir),
		Grace: rollout.DefaultWatchdogGrace, Failures: rollout.DefaultWatchdogFailures,
		MaxRestarts: rollout.DefaultWatchdogMaxRestarts, Window: rollout.DefaultWatchdogWindow,
		ProbeTimeout: rollout.DefaultProbeTimeout}
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{"T3_WD_GRACE", &o.Grace}, {"T3_WD_WINDOW", &o.Window}, {"T3_WD_TIMEOUT", &o.ProbeTimeout}} {
		if v := r.getenv(d.key); v != "" {
			x, err := parseSecondsOrDuration(v)
			if err != nil {
				return o, fmt.Errorf("%s=%q: %w", d.key, v, err)
			}
			*d.dst = x
		}
	}
	for _, n := range []struct {
		key string
		dst *int
	}{{"T3_WD_FAILURES", &o.Failures}, {"T3_WD_MAX_RESTARTS", &o.MaxRestarts}} {
		if v := r.getenv(n.key); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil || x < 1 {
				return o, fmt.Errorf("%s=%q: want a positive integer", n.key, v)
			}
			*n.dst = x
		}
	}
	return o, nil
}
