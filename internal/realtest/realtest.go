package realtest

import (
	"fmt"
	"os"
	"testing"
)

// Env, set to 1, turns a missing real part into a test failure.
const Env = "T3FLEET_REQUIRE_REAL"

// Required reports whether Env is set to 1.
func Required() bool { return os.Getenv(Env) == "1" }

// Missing ends tb for a part the machine lacks, described by format and
// args: a failure when Required, a skip otherwise.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		tb.Fatalf("%s (%s=1)", msg, Env)
		return
	}
	tb.Skip(msg)
}

// NeedRoot ends tb, as Missing does, unless it runs as root.
func NeedRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Missing(tb, "needs root")
	}
}
