package statebackup_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/internal/realtest"
	"github.com/t3fleet/t3fleet/statebackup"
)

// A prebump backup onto a disk that fills up at any point of the snapshot
// (the copy, its journal, the metadata) fails naming where it was writing,
// and leaves nothing LatestPrebump could pick nor a staging copy behind.
// The free space is swept a page at a time, from none to enough.
func TestBackupOnAFullDiskLeavesNoSnapshot(t *testing.T) {
	tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{BulkRows: 200})
	fi, err := os.Stat(mustLive(t, tg))
	require.NoError(t, err)
	dest := filepath.Join(realtest.Tmpfs(t, 4<<20), "backups")
	st := statebackup.NewStore(dest, statebackup.Options{})
	_, err = st.Backup(bg, tg, "manual") // makes the user's directory
	require.NoError(t, err)
	failed := 0
	for free := int64(0); free < fi.Size()+64<<10; free += 4096 {
		filler := realtest.FillTo(t, dest, free)
		snap, err := st.Backup(bg, tg, statebackup.PrebumpLabel("0.0.99"))
		require.NoError(t, os.Remove(filler))
		if err == nil {
			require.NoError(t, os.Remove(snap.Path))
			require.NoError(t, os.Remove(snap.Path+statebackup.MetadataSuffix))
			continue
		}
		failed++
		require.Contains(t, err.Error(), dest, "free %d: the error names the source only, not the full disk", free)
		_, perr := st.LatestPrebump(bg, tg)
		require.ErrorIs(t, perr, statebackup.ErrNoSnapshot, "free %d: %v", free, err)
		entries, err := os.ReadDir(filepath.Join(dest, "emil"))
		require.NoError(t, err)
		for _, e := range entries {
			require.NotContains(t, e.Name(), "prebump", "free %d: left behind", free)
		}
		staging, err := filepath.Glob(filepath.Join(dest, ".staging-*"))
		require.NoError(t, err)
		require.Empty(t, staging, "free %d", free)
	}
	require.NotZero(t, failed)
}

// A restore onto a disk that fills up fails before its swap and leaves the
// live database as it was, or succeeds: the user's database is never
// missing, torn, nor half the snapshot. The old database has its last
// commits in its WAL, so the checkpoint needs room too.
func TestRestoreOnAFullDiskKeepsTheDatabase(t *testing.T) {
	st, _ := newStore(t, statebackup.Options{})
	seeded, snap := snapshotWithMarker(t, t3test.EraC, st, 1, 2)
	image := killedServerImage(t, seeded, 3)
	mnt := realtest.Tmpfs(t, 4<<20)
	tg := image
	tg.UserdataDir = filepath.Join(mnt, "userdata")
	failed := 0
	for free := int64(0); free < snap.Size+64<<10; free += 4096 {
		require.NoError(t, os.RemoveAll(tg.UserdataDir))
		require.NoError(t, os.CopyFS(tg.UserdataDir, os.DirFS(image.UserdataDir)))
		filler := realtest.FillTo(t, mnt, free)
		err := st.Restore(bg, tg, snap)
		require.NoError(t, os.Remove(filler))
		live := filepath.Join(tg.UserdataDir, statebackup.StateDB)
		require.Equal(t, "ok", quickCheck(t, live), "free %d", free)
		if err != nil {
			failed++
			require.Contains(t, err.Error(), tg.UserdataDir, "free %d", free)
			require.Equal(t, 3, marker(t, live), "free %d: %v", free, err)
			continue
		}
		require.Equal(t, 1, marker(t, live), "free %d", free)
		entries, err := os.ReadDir(tg.UserdataDir)
		require.NoError(t, err)
		for _, e := range entries {
			require.False(t, strings.Contains(e.Name(), ".restore-"), "free %d: %s left", free, e.Name())
		}
	}
	require.NotZero(t, failed)
}

// A backup that cannot fit in the free space of the destination is refused
// before a byte is written, naming what it needs and what is free: a
// user's database as large as the backup disk would otherwise fill it,
// and every other user's backup with it, before failing.
func TestBackupRefusesWhatCannotFit(t *testing.T) {
	tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{BulkRows: 4000})
	fi, err := os.Stat(mustLive(t, tg))
	require.NoError(t, err)
	mnt := realtest.Tmpfs(t, 1<<20)
	require.Greater(t, fi.Size(), int64(1<<20), "the seeded database must not fit")
	dest := filepath.Join(mnt, "backups")
	st := statebackup.NewStore(dest, statebackup.Options{})
	_, err = st.Backup(bg, tg, statebackup.PrebumpLabel("0.0.99"))
	require.ErrorIs(t, err, statebackup.ErrNoRoom)
	require.Contains(t, err.Error(), dest)
	require.Contains(t, err.Error(), strconv.FormatInt(fi.Size(), 10), "names what it needs")
	staging, err := filepath.Glob(filepath.Join(dest, ".staging-*"))
	require.NoError(t, err)
	require.Empty(t, staging)
	_, err = st.LatestPrebump(bg, tg)
	require.ErrorIs(t, err, statebackup.ErrNoSnapshot)
}
