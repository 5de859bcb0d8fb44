package proctree_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/proctree"
	"github.com/t3fleet/t3fleet/adapters/systemd"
	"github.com/t3fleet/t3fleet/rollout"
)

func ExampleOracle() {
	o := &proctree.Oracle{
		// In the updater this is the unit manager's Status(...).MainPID.
		MainPID: func(context.Context, t3fleet.Instance) (int, error) { return os.Getpid(), nil },
	}
	v, err := o.Idle(context.Background(), t3fleet.Instance{OSUser: "emil"})
	fmt.Println(v.Idle, err)
	// Output: true <nil>
}

// With systemd, the unit's ControlGroup also finds the agents re-parented
// out of the tree, which stopping the unit would kill all the same.
func ExampleOracle_cgroup() {
	ctx := context.Background()
	units, err := systemd.DialSystem(ctx, systemd.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer units.Close()
	o := &proctree.Oracle{
		MainPID: func(ctx context.Context, in t3fleet.Instance) (int, error) {
			st, err := units.Status(ctx, rollout.Unit{User: in.OSUser})
			return st.MainPID, err
		},
		Cgroup: func(ctx context.Context, in t3fleet.Instance) (string, error) {
			return units.ControlGroup(ctx, rollout.Unit{User: in.OSUser})
		},
	}
	v, err := o.Idle(ctx, t3fleet.Instance{OSUser: "emil"})
	fmt.Println(v.Idle, v.Reason, err)
}
