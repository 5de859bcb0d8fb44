package statebackup_test

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

// Dest is an exported field, so a Store written as a literal must work as
// NewStore's does: every zero option means its default, not a zero timeout
// (a deadline already past) or a nil clock or logger.
func TestStoreLiteralTakesTheDefaults(t *testing.T) {
	tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{})
	st := &statebackup.Store{Dest: t.TempDir()}

	snap, err := st.Backup(bg, tg, "")
	require.NoError(t, err)
	assert.True(t, snap.Verified)
	// A snapshot whose metadata is a planted link is skipped, and logged
	// (to no logger: none was given).
	stray := filepath.Join(st.Dest, "emil", "state-20260101-000000.sqlite")
	require.NoError(t, os.WriteFile(stray, nil, 0o600))
	require.NoError(t, os.Symlink("/nonexistent", stray+statebackup.MetadataSuffix))
	list, err := st.List(bg, tg)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.NoError(t, st.Restore(bg, tg, snap))
	require.NoError(t, st.Prune(bg, tg, 1))
}

// A Target without a UserdataDir (an instance whose state is not on this
// host) is refused, never read from, or restored into, the working
// directory.
func TestTargetWithoutUserdataDirIsRefused(t *testing.T) {
	tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{})
	st, _ := newStore(t, statebackup.Options{})
	snap, err := st.Backup(bg, tg, "")
	require.NoError(t, err)

	t.Chdir(tg.UserdataDir) // a live database right in the working directory
	before := fileSum(t, statebackup.StateDB)
	noDir := statebackup.Target{User: "emil"}

	_, err = st.Backup(bg, noDir, "")
	assert.ErrorIs(t, err, statebackup.ErrNoUserdataDir)
	assert.NotErrorIs(t, err, statebackup.ErrNoDatabase, "not a user without a database yet: AllowMissingBackup must not skip it")
	var be *statebackup.BackupError
	if assert.ErrorAs(t, err, &be, "the user's name comes typed, for callers that name users themselves") {
		assert.Equal(t, "emil", be.User)
	}
	err = st.Restore(bg, noDir, snap)
	assert.ErrorIs(t, err, statebackup.ErrNoUserdataDir)
	_, err = statebackup.LiveDB("")
	assert.ErrorIs(t, err, statebackup.ErrNoUserdataDir)

	assert.Equal(t, before, fileSum(t, statebackup.StateDB), "the working directory's database untouched")
}

func fileSum(tb testing.TB, path string) [32]byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	require.NoError(tb, err)
	return sha256.Sum256(b)
}
