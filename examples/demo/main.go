package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/rollout"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "also print the engine's log lines")
	keep := fs.Bool("keep", false, "keep the temp dir (printed at the end)")
	registry := fs.String("registry", "auto", "auto (Verdaccio when installed), or fake (in-process)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *registry != "auto" && *registry != "fake" {
		fmt.Fprintf(stderr, "demo: -registry %q: want auto or fake\n", *registry)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "t3fleet-demo-")
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	n := &narrator{w: stdout, start: time.Now()}
	err = story(ctx, dir, n, *verbose, *registry == "fake")
	if *keep {
		n.say("kept %s", dir)
	}
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	n.say("demo finished in %s", since(n.start))
	return 0
}

func story(ctx context.Context, dir string, n *narrator, verbose, fakeRegistry bool) error {
	n.scene("setting up: three users, each with their own t3 serve, the dispatch in front")
	f, err := newFleet(ctx, dir, []string{"alice", "bob", "carol"}, "carol", fakeRegistry, n.say)
	if err != nil {
		return err
	}
	defer f.close()
	for _, u := range f.users {
		n.say("%s: t3 serve %s on 127.0.0.1:%d (schema %d), running under the supervisor", u, f.serverVersion(ctx, u), f.ports[u], f.ledger(u))
	}
	n.say("dispatch (pairing handler over %s) at %s", filepath.Join("etc", "t3-serve", "dispatch.json"), f.dispatch.URL)
	n.say("carol has an agent turn running right now")

	logger := slog.New(slog.DiscardHandler)
	if verbose {
		logger = slog.New(slog.NewTextHandler(n.w, nil))
	}
	e, err := f.engine(logger, n.event)
	if err != nil {
		return err
	}

	// 1. A good nightly.
	n.scene("1. a good nightly: " + vGood + " (adds migrations 31-32)")
	if err := f.publish(ctx, vGood, t3test.Faults{}); err != nil {
		return err
	}
	n.say("$ updater run")
	res, err := e.Run(ctx)
	n.say("=> %s", res.Line())
	if res.Outcome != rollout.OutcomeDone {
		return fmt.Errorf("good nightly: %s (%v)", res.Line(), err)
	}
	for _, u := range f.users {
		n.say("%s now serves %s, schema %d", u, f.serverVersion(ctx, u), f.ledger(u))
	}

	// 2. The drain.
	n.scene("2. the idle drainer catches carol up")
	w := windowAround(time.Now())
	n.say("$ updater migrate-idle --window %s   (default %s; set to include now for the demo)", w, rollout.DefaultDrainWindow)
	dres, err := e.MigrateIdle(ctx, rollout.DrainOptions{Window: w})
	n.say("=> %s", dres.Line())
	if err != nil {
		return fmt.Errorf("drain while busy: %w", err)
	}
	n.say("carol's turn finishes")
	if err := t3test.SetActiveTurn(f.baseDir("carol"), t3test.SeedThreadID(0), false, time.Now().Add(-10*time.Second)); err != nil {
		return err
	}
	n.say("$ updater migrate-idle --window %s", w)
	dres, err = e.MigrateIdle(ctx, rollout.DrainOptions{Window: w})
	n.say("=> %s", dres.Line())
	if err != nil || len(dres.Migrated) != 1 {
		return fmt.Errorf("drain: %s (%v)", dres.Line(), err)
	}
	n.say("carol now serves %s, schema %d", f.serverVersion(ctx, "carol"), f.ledger("carol"))

	// 3. A bad nightly.
	n.scene("3. a bad nightly: " + vBad + " (its migration throws)")
	if err := f.publish(ctx, vBad, t3test.Faults{MigrationFails: true}); err != nil {
		return err
	}
	pids := map[string]int{}
	for _, u := range f.users {
		st, _ := f.sup.Status(ctx, f.unit(u))
		pids[u] = st.MainPID
	}
	n.say("$ updater run")
	res, _ = e.Run(ctx)
	n.say("=> %s", res.Line())
	if res.Outcome != rollout.OutcomeHealthCheckFailed {
		return fmt.Errorf("bad nightly: %s", res.Line())
	}
	same := 0
	for _, u := range f.users {
		if st, _ := f.sup.Status(ctx, f.unit(u)); st.MainPID == pids[u] {
			same++
		}
	}
	n.say("%d of %d instances untouched (same process); %s is on the dead-end list", same, len(f.users), vBad)

	// 4. A nightly that breaks one user's canary.
	n.scene("4. a nightly that breaks pairing for bob's data: " + vBreaks)
	if err := f.publish(ctx, vBreaks, t3test.Faults{}); err != nil {
		return err
	}
	f.setFault(vBreaks, "bob", "pairingbroken")
	n.say("(simulated: on %s, bob's serve answers GET / but every pairing exchange fails)", vBreaks)
	n.say("$ updater run")
	res, _ = e.Run(ctx)
	n.say("=> %s", res.Line())
	if res.Outcome != rollout.OutcomeRolledBack {
		return fmt.Errorf("canary: %s", res.Line())
	}
	for _, u := range f.users {
		n.say("%s serves %s, schema %d", u, f.serverVersion(ctx, u), f.ledger(u))
	}
	n.say("$ updater run   (the next timer run)")
	res, _ = e.Run(ctx)
	n.say("=> %s", res.Line())

	// 5. The watchdog.
	n.scene("5. alice's instance comes up wedged; the watchdog brings it back")
	f.faultOnce("alice", "wedged")
	if err := f.sup.Restart(ctx, f.unit("alice")); err != nil {
		return err
	}
	n.say("alice's listener accepts connections and never answers")
	wd := &rollout.Watchdog{Engine: e, Probe: t3a.EnvironmentProbe{BaseURL: hostfiles.EnvFileBaseURL(f.envDir), Client: &http.Client{}},
		WatchdogOptions: rollout.WatchdogOptions{Dir: filepath.Join(dir, "run", "t3-watchdog"),
			Grace: -1, ProbeTimeout: 300 * time.Millisecond}}
	n.say("(grace period off for the demo; 3 failures in a row, at most 3 restarts per 30 min; it ignores the freeze)")
	for i := 1; i <= 3; i++ {
		n.say("$ updater watchdog   (minute %d)", i)
		wres, err := wd.Tick(ctx)
		for _, l := range wres.Lines() {
			n.say("  %s", l)
		}
		if err != nil {
			return fmt.Errorf("watchdog: %w", err)
		}
	}
	n.say("alice serves %s again", f.serverVersion(ctx, "alice"))

	// 6. Status.
	n.scene("6. updater status")
	st, err := e.Status(ctx)
	if err != nil {
		return err
	}
	for _, l := range st.Lines() {
		n.say("%s", l)
	}
	extra, err := e.DrainWatchdogLines(0)
	for _, l := range extra {
		n.say("%s", l)
	}
	return err
}

// windowAround is a drain window from an hour before t to an hour after.
func windowAround(t time.Time) rollout.Window {
	h, m, _ := t.Clock()
	at := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute
	day := 24 * time.Hour
	return rollout.Window{Start: (at - time.Hour + day) % day, End: (at + time.Hour + day) % day}
}
