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

// A restore runs as a chain of steps; a user who swaps ~/.t3 for a symlink
// to bob's between two of them must not get the later steps (set aside,
// swap, cleanup, statev2's retirement) run in bob's directory.
func TestRestoreKeepsToTheDirectoryItChecked(t *testing.T) {
	for _, step := range []statebackup.RestoreStep{statebackup.StepCheckpoint, statebackup.StepSetAside, statebackup.StepSwap, statebackup.StepCleanup} {
		t.Run(string(step), func(t *testing.T) {
			bob := mustSeed(t, "bob", t3test.EraE, t3test.SeedOptions{})
			bobV1 := filepath.Join(bob.UserdataDir, statebackup.StateDB)
			require.NoError(t, os.WriteFile(bobV1+"-wal", nil, 0o600)) // a sidecar of his to set aside
			setMarker(t, mustLive(t, bob), 7)
			before := entries(t, bob.UserdataDir)

			swapped := false
			var aliceT3 string
			st, _ := newStore(t, statebackup.Options{BeforeRestoreStep: func(s statebackup.RestoreStep) error {
				if s == step && !swapped {
					swapped = true
					pointAt(t, aliceT3, filepath.Dir(bob.UserdataDir))
				}
				return nil
			}})
			alice, snap := snapshotWithMarker(t, t3test.EraC, st, 1, 2)
			aliceT3 = filepath.Dir(alice.UserdataDir)

			err := st.Restore(bg, alice, snap)
			require.True(t, swapped)
			assert.Equal(t, before, entries(t, bob.UserdataDir), "bob's directory untouched (restore: %v)", err)
			assert.Equal(t, 7, marker(t, mustLive(t, bob)), "bob's database untouched")
			t.Logf("restore with ~/.t3 swapped before %s: %v", step, err)
			if err == nil {
				assert.Equal(t, 1, marker(t, filepath.Join(aliceT3+".real", "userdata", statebackup.StateDB)),
					"restored into the directory it checked")
			}
		})
	}
}
