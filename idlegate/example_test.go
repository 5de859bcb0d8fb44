package idlegate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
)

func ExampleDBOracle() {
	tmp, _ := os.MkdirTemp("", "idlegate-example")
	defer os.RemoveAll(tmp)
	base := filepath.Join(tmp, ".t3")
	start := time.Date(2026, 9, 6, 12, 0, 0, 0, time.UTC)
	if err := t3test.SeedState(base, t3test.EraD, t3test.SeedOptions{ActiveTurns: 1, Now: start}); err != nil {
		fmt.Println(err)
		return
	}
	in := t3fleet.Instance{User: "emil", OSUser: "emil", StateDir: base}
	now := func() time.Time { return start.Add(20 * time.Minute) }
	gate := idlegate.All(idlegate.NewDBOracle(idlegate.DBOptions{Now: now}))

	v, _ := gate.Idle(context.Background(), in)
	fmt.Println(v.Idle, v.Reason)

	_ = t3test.SetActiveTurn(base, t3test.SeedThreadID(0), false, start)
	v, _ = gate.Idle(context.Background(), in)
	fmt.Println(v.Idle, v.Reason)
	// Output:
	// false 1 turn(s) in flight
	// true idle: quiet for 20m0s
}
