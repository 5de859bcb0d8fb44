package rollout_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

func ExampleParseWindow() {
	w, _ := rollout.ParseWindow("22:00-04:00")
	for _, h := range []int{21, 22, 3, 4} {
		fmt.Printf("%02d:00 %v\n", h, w.Contains(time.Date(2026, 1, 1, h, 0, 0, 0, time.Local)))
	}
	// Output:
	// 21:00 false
	// 22:00 true
	// 03:00 true
	// 04:00 false
}

// A deferred user is restarted onto the current build once idle, inside
// the window.
func ExampleEngine_MigrateIdle() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	sim, _ := rollouttest.NewSim(dir, "0.0.31-nightly.20260616.571", "alice")
	_ = sim.AddUser("carol", &rollouttest.SimUser{Running: true, Version: "0.0.27-nightly.20260601.1", DBSize: 10})
	e := sim.Engine(rollout.Options{StateDir: filepath.Join(dir, "state")})
	_ = e.State().Defer("carol", "0.0.31-nightly.20260616.571")

	res, err := e.MigrateIdle(context.Background(), rollout.DrainOptions{Window: rollout.AlwaysWindow})
	fmt.Println(res.Outcome, res.Migrated, err)
	// Output: done [carol] <nil>
}

// The watchdog is one Tick per timer run; the Prober is where the instance
// is asked (an HTTP GET of /.well-known/t3/environment in the updater).
func ExampleWatchdog() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	sim, _ := rollouttest.NewSim(dir, "0.0.31-nightly.20260616.571", "alice")
	wd := &rollout.Watchdog{
		Engine: sim.Engine(rollout.Options{}),
		Probe: rollout.ProbeFunc(func(ctx context.Context, m rollout.Member) error {
			return fmt.Errorf("%s: context deadline exceeded", m.Unit.User) // wedged
		}),
		WatchdogOptions: rollout.WatchdogOptions{Dir: filepath.Join(dir, "run")},
	}
	for range 3 {
		res, _ := wd.Tick(context.Background())
		fmt.Println(res.Units[0].Action)
	}
	// Output:
	// failing
	// failing
	// restarted
}
