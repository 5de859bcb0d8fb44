package proctree_test

import (
	"context"
	"fmt"
	"os"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/proctree"
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
