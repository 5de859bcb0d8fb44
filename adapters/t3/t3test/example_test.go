package t3test_test

import (
	"fmt"
	"os"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// A populated era-C database: the ledger shows migrations 31 and 32 applied.
func ExampleSeedState() {
	dir, err := os.MkdirTemp("", "t3test-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := t3test.SeedState(dir, t3test.EraC, t3test.SeedOptions{Threads: 2}); err != nil {
		panic(err)
	}
	level, err := t3test.ReadLedgerMax(t3test.LiveDB(dir))
	if err != nil {
		panic(err)
	}
	fmt.Println(level)
	// Output: 32
}

func ExampleEraFor() {
	fmt.Println(t3test.EraFor("0.0.24"), t3test.EraFor("0.0.28-nightly.20260616.571"), t3test.EraFor("0.0.46"))
	// Output: A C E
}
