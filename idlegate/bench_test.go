package idlegate_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
)

// BenchmarkDBOracle100k measures one verdict on a state DB with 100k
// threads (sessions, turns, messages each), two of them in flight.
// Target: < 20 ms per verdict.
func BenchmarkDBOracle100k(b *testing.B) {
	for _, era := range []t3test.Era{t3test.EraD, t3test.EraE} {
		b.Run(string(era), func(b *testing.B) {
			base := filepath.Join(b.TempDir(), ".t3")
			require.NoError(b, t3test.SeedState(base, era, t3test.SeedOptions{Threads: 100_000, ActiveTurns: 2, Now: t0}))
			o := idlegate.NewDBOracle(idlegate.DBOptions{Now: func() time.Time { return t0.Add(time.Hour) }})
			in := instance(base)
			b.ResetTimer()
			for b.Loop() {
				v, err := o.Idle(bg, in)
				if err != nil || v.ActiveTurns != 2 {
					b.Fatalf("verdict %+v, %v", v, err)
				}
			}
		})
	}
}
