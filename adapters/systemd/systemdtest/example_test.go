package systemdtest_test

import (
	"fmt"

	"github.com/t3fleet/t3fleet/adapters/systemd/systemdtest"
)

func ExampleService_Text() {
	fmt.Print(systemdtest.Service{
		Description: "t3 for %i",
		ExecStart:   []string{"/usr/local/bin/t3", "serve", "--port", "3801"},
	}.Text())
	// Output:
	// [Unit]
	// Description=t3 for %i
	//
	// [Service]
	// Type=exec
	// ExecStart="/usr/local/bin/t3" "serve" "--port" "3801"
}
