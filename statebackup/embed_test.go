package statebackup_test

import (
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
