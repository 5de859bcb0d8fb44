package statebackup_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

// A snapshot of one user restored onto another's target (an operator's
// slip with --snapshot, a damaged journal) would replace that user's
// database with someone else's, and delete theirs: refused, nothing
// touched.
func TestRestoreRefusesAnotherUsersSnapshot(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(t *testing.T, snap *statebackup.Snapshot)
	}{
		{"metadata names emil", func(t *testing.T, s *statebackup.Snapshot) {}},
		{"no metadata, in emil's directory", func(t *testing.T, s *statebackup.Snapshot) {
			require.NoError(t, os.Remove(s.Path+statebackup.MetadataSuffix))
			fresh, err := statebackup.ReadSnapshot(s.Path)
			require.NoError(t, err)
			*s = fresh
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, _ := newStore(t, statebackup.Options{})
			_, snap := snapshotWithMarker(t, t3test.EraC, st, 1, 2)
			c.spoil(t, &snap)
			bob := mustSeed(t, "bob", t3test.EraC, t3test.SeedOptions{})
			setMarker(t, mustLive(t, bob), 7)

			err := st.Restore(bg, bob, snap)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "emil")
			var re *statebackup.RestoreError
			require.ErrorAs(t, err, &re, "a rollback tells by its type that the user is named")
			assert.Equal(t, "bob", re.User)
			assert.Equal(t, snap.Path, re.Snapshot)
			assert.Equal(t, 7, marker(t, mustLive(t, bob)), "bob's database untouched")
		})
	}
}
