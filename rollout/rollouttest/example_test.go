package rollouttest_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

func ExampleSim() {
	dir, _ := os.MkdirTemp("", "sim")
	defer os.RemoveAll(dir)
	sim, _ := rollouttest.NewSim(dir, "0.0.28-nightly.20260616.571", "alice", "bob")
	sim.Publish("nightly", "0.0.28-nightly.20260617.580", time.Now())
	sim.FailCanary("0.0.28-nightly.20260617.580", "bob")

	res, _ := sim.Engine(rollout.Options{}).Run(context.Background())
	fmt.Println(res.Outcome, sim.Current())
	// Output: rolled-back 0.0.28-nightly.20260616.571
}

func ExampleVerifier() {
	v := &rollouttest.Verifier{VerifyPairingFunc: func(_ context.Context, user string) error {
		return fmt.Errorf("no session cookie for %s", user)
	}}
	fmt.Println(v.VerifyPairing(context.Background(), "emil"))
	// Output: no session cookie for emil
}
