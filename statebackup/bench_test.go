package statebackup_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

// BenchmarkBackupUnderWriter takes verified snapshots of a ~40 MB live WAL
// database while a writer keeps inserting, reporting MB/s and the writer's
// longest insert. examples/backupbench runs the 200 MB comparison with the
// sqlite3 CLI as the baseline.
func BenchmarkBackupUnderWriter(b *testing.B) {
	tg := mustSeed(b, "bench", t3test.EraD, t3test.SeedOptions{BulkRows: 10_000, BulkRowBytes: 4096})
	live := mustLive(b, tg)
	w := startWriter(b, live)
	waitFor(b, 10*time.Second, func() bool { return w.count() > 10 })
	st, _ := newStore(b, statebackup.Options{})
	var bytes int64
	w.mu.Lock()
	w.maxStall = 0
	w.mu.Unlock()
	b.ResetTimer()
	for b.Loop() {
		snap, err := st.Backup(bg, tg, statebackup.LabelManual)
		require.NoError(b, err)
		bytes += snap.Size
	}
	b.StopTimer()
	_, stall, err := w.Stop()
	require.NoError(b, err)
	b.ReportMetric(float64(bytes)/(1<<20)/b.Elapsed().Seconds(), "MB/s")
	b.ReportMetric(float64(stall.Milliseconds()), "max-stall-ms")
}
