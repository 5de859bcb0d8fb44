package statebackup_test

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

// A user owns their snapshot directory and can plant a FIFO where a
// snapshot's metadata belongs. Opening it for reading would block until
// someone writes: List (and Prune, LatestPrebump, the end of a run, which
// holds the updater's lock) would hang for good. It must be skipped.
func TestListSkipsAPlantedFIFO(t *testing.T) {
	st, dest := newStore(t, statebackup.Options{})
	tg, snap := snapshotWithMarker(t, t3test.EraC, st, 1, 2)
	dir := filepath.Join(dest, tg.User)
	fifoSnap := filepath.Join(dir, plant(t, dir, "prebump-0.0.98", time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)))
	fifo := fifoSnap + statebackup.MetadataSuffix
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	t.Cleanup(func() { // unblock a reader left hanging, so the test binary can end
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})

	type listed struct {
		snaps []statebackup.Snapshot
		err   error
	}
	done := make(chan listed, 1)
	go func() {
		snaps, err := st.List(bg, tg)
		done <- listed{snaps, err}
	}()
	select {
	case got := <-done:
		require.NoError(t, got.err)
		var paths []string
		for _, s := range got.snaps {
			paths = append(paths, s.Path)
		}
		assert.Equal(t, []string{snap.Path}, paths, "the snapshot whose metadata is a FIFO is skipped")
	case <-time.After(10 * time.Second):
		t.Fatal("List blocked on a FIFO planted as metadata")
	}
}

// A user can write anything as a snapshot's metadata in their own
// directory: a metadata file of gigabytes of blanks before a valid object
// made List (run by root for every user, at every backup and at the end of
// a run) read it all into memory, the whole updater's, until the OOM killer
// ended the night's run for everyone. Metadata is a few hundred bytes: a
// file past the limit is skipped unread.
func TestListSkipsOversizedMetadata(t *testing.T) {
	st, dest := newStore(t, statebackup.Options{})
	tg, snap := snapshotWithMarker(t, t3test.EraC, st, 1, 2)
	dir := filepath.Join(dest, tg.User)
	big := filepath.Join(dir, plant(t, dir, "prebump-0.0.98", time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)))
	f, err := os.Create(big + statebackup.MetadataSuffix)
	require.NoError(t, err)
	blanks := bytes.Repeat([]byte{' '}, 1<<20)
	for range 4 { // 4 MiB here; any size in an attack
		_, err = f.Write(blanks)
		require.NoError(t, err)
	}
	_, err = f.WriteString(`{"user":"emil","label":"prebump-0.0.98","time":"2026-09-01T00:00:00Z","check":"quick_check"}`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	snaps, err := st.List(bg, tg)
	require.NoError(t, err)
	var paths []string
	for _, s := range snaps {
		paths = append(paths, s.Path)
	}
	assert.Equal(t, []string{snap.Path}, paths, "the snapshot with oversized metadata is skipped, not read whole")
}
