package statebackup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

// Two backups of one user with one label in the same second (the daily
// timer and an operator) each get a name of their own: the second used to
// replace the first under the same path, both reporting success.
func TestConcurrentBackupsInOneSecondKeepBoth(t *testing.T) {
	at := time.Date(2026, 11, 24, 3, 4, 5, 0, time.UTC)
	st, _ := newStore(t, statebackup.Options{Now: func() time.Time { return at }})
	tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{})
	for round := 0; round < 10; round++ {
		var wg sync.WaitGroup
		snaps := make([]statebackup.Snapshot, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() { snaps[i], errs[i] = st.Backup(bg, tg, "manual") })
		}
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.NotEqual(t, snaps[0].Path, snaps[1].Path, "round %d", round)
		for _, s := range snaps {
			got, err := statebackup.ReadSnapshot(s.Path)
			require.NoError(t, err)
			require.Equal(t, s.SHA256, got.SHA256, "metadata and file belong together")
		}
	}
	list, err := st.List(bg, tg)
	require.NoError(t, err)
	require.Len(t, list, 20)
}

// Snapshots of one second are ordered by their .N, newest first (.10 after
// .9, .1 after the plain name), so LatestPrebump is the latest.
func TestListOrdersOneSecondBySequence(t *testing.T) {
	at := time.Date(2026, 11, 24, 3, 4, 5, 0, time.UTC)
	st, _ := newStore(t, statebackup.Options{Now: func() time.Time { return at }})
	tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{})
	var last statebackup.Snapshot
	for range 11 {
		s, err := st.Backup(bg, tg, statebackup.PrebumpLabel("0.0.30"))
		require.NoError(t, err)
		last = s
	}
	got, err := st.LatestPrebump(bg, tg)
	require.NoError(t, err)
	require.Equal(t, last.Path, got.Path)
	require.True(t, strings.HasSuffix(got.Path, ".10.sqlite"), got.Path)
}

// A backup killed mid-copy (SIGKILL, OOM, power) leaves its staging
// directory, a whole copy of the database; the next backup removes the
// ones older than the backup timeout.
func TestBackupRemovesStaleStaging(t *testing.T) {
	st, dest := newStore(t, statebackup.Options{Timeout: time.Minute})
	tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{})
	stale := filepath.Join(dest, ".staging-123")
	fresh := filepath.Join(dest, ".staging-456")
	for _, d := range []string{stale, fresh} {
		require.NoError(t, os.MkdirAll(d, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(d, "snapshot.sqlite"), []byte("x"), 0o600))
	}
	old := time.Now().Add(-2 * time.Minute)
	require.NoError(t, os.Chtimes(stale, old, old))
	_, err := st.Backup(bg, tg, "manual")
	require.NoError(t, err)
	require.NoDirExists(t, stale)
	require.DirExists(t, fresh, "one that may belong to a backup still running stays")
}

// A backup's timeout or cancel stops the copy itself, not only what comes
// after it: the copy holds a read transaction, and with it the server's
// WAL, for as long as it runs. Cancelled once 1 MB of a ~40 MB copy is
// written, the copy must stop near there.
func TestBackupCancelStopsTheCopy(t *testing.T) {
	tg := mustSeed(t, "emil", t3test.EraD, t3test.SeedOptions{BulkRows: 10_000, BulkRowBytes: 4096})
	st, dest := newStore(t, statebackup.Options{})
	fi, err := os.Stat(mustLive(t, tg))
	require.NoError(t, err)
	full := fi.Size()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var largest atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() { // watch the copy grow in the staging directory
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			files, _ := filepath.Glob(filepath.Join(dest, ".staging-*", "snapshot.sqlite"))
			for _, f := range files {
				if fi, err := os.Stat(f); err == nil {
					if fi.Size() > largest.Load() {
						largest.Store(fi.Size())
					}
					if fi.Size() > 1<<20 {
						cancel()
					}
				}
			}
		}
	}()
	_, err = st.Backup(ctx, tg, "manual")
	close(stop)
	<-watched
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, largest.Load(), full/2, "the copy went on to %d of %d bytes after the cancel", largest.Load(), full)
}
