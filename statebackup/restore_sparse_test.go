package statebackup_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/internal/realtest"
	"github.com/t3fleet/t3fleet/statebackup"
)

// A user owns their snapshots and can put a sparse file of any apparent
// size in place of one (it costs them no space). A restore (a rollback)
// copied it densely, as root, into the user's data directory: root's
// writes ignore the user's quota and eat the blocks reserved for root, so
// the file system holding every user's home filled up and the other users'
// restores of the same rollback failed. A source whose size is not the
// recorded one, or larger than the space left, is refused before a byte is
// written.
func TestRestoreRefusesAnInflatedSnapshot(t *testing.T) {
	realtest.NeedRoot(t)
	home := realtest.Tmpfs(t, 64<<20)
	base := filepath.Join(home, "emil", ".t3")
	require.NoError(t, os.MkdirAll(base, 0o755))
	require.NoError(t, t3test.SeedState(base, t3test.EraC, t3test.SeedOptions{Threads: 1}))
	tg := statebackup.Target{User: "emil", UserdataDir: t3test.UserDataDir(base)}
	st, _ := newStore(t, statebackup.Options{})
	snap, err := st.Backup(bg, tg, statebackup.PrebumpLabel("0.0.99"))
	require.NoError(t, err)

	// The user swaps the snapshot for a sparse file.
	inflated := snap.Path + ".new"
	f, err := os.Create(inflated)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(1<<30))
	require.NoError(t, f.Close())
	require.NoError(t, os.Rename(inflated, snap.Path))

	for name, s := range map[string]statebackup.Snapshot{
		"recorded size (the journal's)": snap,
		"size from a planted metadata":  {Path: snap.Path, User: "emil", Size: 1 << 30},
	} {
		err = st.Restore(bg, tg, s)
		require.Error(t, err, name)
		assert.False(t, errors.Is(err, syscall.ENOSPC), "%s: refused before filling the disk, not by it: %v", name, err)
	}
	assert.Equal(t, 1, query(t, mustLive(t, tg), "SELECT count(*) > 0 FROM sqlite_master"), "the live database is untouched")
}
