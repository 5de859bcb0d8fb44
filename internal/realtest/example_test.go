package realtest_test

import (
	"os/exec"
	"testing"

	"github.com/t3fleet/t3fleet/internal/realtest"
)

// A test of a real part looks it up first, and leaves the verdict on its
// absence to Missing.
func Example() {
	var t testing.TB // the test's *testing.T
	if _, err := exec.LookPath("sqlite3"); err != nil {
		realtest.Missing(t, "%v (apt-get install -y sqlite3)", err)
	}
	// ... use sqlite3
}
