package rollout_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

func ExampleEngine_Run() {
	dir, _ := os.MkdirTemp("", "rollout-example")
	defer os.RemoveAll(dir)
	sim, _ := rollouttest.NewSim(dir, "0.0.28-nightly.20260616.571", "alice", "bob")
	sim.Publish("nightly", "0.0.28-nightly.20260617.580", time.Now().Add(-time.Hour))
	sim.SetBusy("bob", true)

	e := sim.Engine(rollout.Options{})
	res, err := e.Run(context.Background())
	fmt.Println(res.Outcome, res.Restarted, res.Deferred, err)
	// Output: done [alice] [bob] <nil>
}

func ExampleGate() {
	err := rollout.Gate(rollout.GateInput{
		Current: "0.0.28-nightly.20260616.571",
		Release: rollout.Release{Version: "0.0.27-nightly.20260610.500"},
		Channel: "nightly",
	})
	fmt.Println(err)
	// Output: refused 0.0.27-nightly.20260610.500: 0.0.27-nightly.20260610.500 is not newer than current 0.0.28-nightly.20260616.571
}
