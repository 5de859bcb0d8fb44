package t3fleet_test

import (
	"fmt"

	"github.com/t3fleet/t3fleet"
)

func ExampleValidOSUser() {
	for _, name := range []string{"emil", "../root"} {
		fmt.Println(name, t3fleet.ValidOSUser(name) == nil)
	}
	// Output:
	// emil true
	// ../root false
}
