package supervisor_test

import (
	"context"
	"fmt"
	"log"

	"github.com/t3fleet/t3fleet/adapters/supervisor"
	"github.com/t3fleet/t3fleet/rollout"
)

func ExampleSupervisor() {
	ctx := context.Background()
	s, err := supervisor.New([]supervisor.UnitSpec{
		{User: "emil", Argv: []string{"sleep", "60"}},
		{User: "zoe", Argv: []string{"sleep", "60"}},
	}, supervisor.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	var um rollout.UnitManager = s
	if err := um.Start(ctx, rollout.Unit{User: "emil"}); err != nil {
		log.Fatal(err)
	}
	units, _ := um.Units(ctx)
	for _, u := range units {
		st, _ := um.Status(ctx, u)
		fmt.Println(u.Name, st.State, st.MainPID > 0)
	}
	// Output:
	// t3-serve@emil.service active true
	// t3-serve@zoe.service inactive false
}
