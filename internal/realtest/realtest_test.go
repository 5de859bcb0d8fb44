package realtest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/t3fleet/t3fleet/internal/realtest"
)

// recorder records how Missing ended a test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, a ...any) { r.fatal = format }
func (r *recorder) Skip(a ...any)                  { r.skip = "skip" }

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		env        string
		fail, skip bool
	}{
		{"1", true, false},
		{"", false, true},
		{"0", false, true},
	} {
		t.Setenv(realtest.Env, tc.env)
		r := &recorder{TB: t}
		realtest.Missing(r, "no %s", "wrk")
		assert.Equal(t, tc.fail, r.fatal != "", "env %q", tc.env)
		assert.Equal(t, tc.skip, r.skip != "", "env %q", tc.env)
	}
}
