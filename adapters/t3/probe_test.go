package t3_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/rollout"
)

// TestEnvironmentProbe: a wedged instance fails by the deadline; one that
// has just started and accepted the probe's first connection without ever
// answering it (t3code #12215) passes once it answers, within the same
// deadline, instead of counting as a failed probe.
func TestEnvironmentProbe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults t3test.Faults
		ok     bool
	}{
		{"answering", t3test.Faults{}, true},
		{"in its start window", t3test.Faults{DeafStart: 700 * time.Millisecond}, true},
		{"wedged", t3test.Faults{Wedged: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := t3test.NewServer(t.TempDir(), t3test.Options{Faults: tc.faults})
			t.Cleanup(srv.Close)
			p := t3.EnvironmentProbe{BaseURL: func(rollout.Unit) (string, error) { return srv.URL, nil }}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err := p.Probe(ctx, rollout.Member{Unit: rollout.Unit{User: "ana"}})
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, context.DeadlineExceeded)
			}
		})
	}
}
