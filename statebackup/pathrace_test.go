package statebackup_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/internal/realtest"
	"github.com/t3fleet/t3fleet/statebackup"
)

// The uids of the two users of the path-race tests.
const aliceUID, bobUID = 65534, 65533

// twoHomes seeds alice's and bob's t3 state, runs prep on them (as root,
// before they change hands), then gives each home to its user, bob's 0700:
// alice cannot reach into it with her own rights.
func twoHomes(t *testing.T, era t3test.Era, prep func(alice, bob statebackup.Target)) (alice, bob statebackup.Target) {
	t.Helper()
	alice = mustSeed(t, "alice", era, t3test.SeedOptions{Threads: 1})
	bob = mustSeed(t, "bob", era, t3test.SeedOptions{Threads: 1})
	prep(alice, bob)
	aT3, bT3 := filepath.Dir(alice.UserdataDir), filepath.Dir(bob.UserdataDir)
	realtest.OpenPath(t, aT3)
	realtest.OpenPath(t, bT3)
	chownTree(t, filepath.Dir(aT3), aliceUID, aliceUID)
	chownTree(t, filepath.Dir(bT3), bobUID, bobUID)
	require.NoError(t, os.Chmod(filepath.Dir(bT3), 0o700)) // bob's home
	return alice, bob
}

// swapping has alice swap her ~/.t3 with a symlink to bob's, over and over,
// until the returned stop is called (at the latest when t ends); stop
// leaves her real directory in place.
func swapping(t *testing.T, alice, bob statebackup.Target) (stop func()) {
	t.Helper()
	return realtest.SwapWithSymlink(t, filepath.Dir(alice.UserdataDir), filepath.Dir(bob.UserdataDir))
}

// alice swaps her ~/.t3 with a symlink to bob's while root backs her up.
// openDir's walk sees her real directory, then SQLite opens the database by
// path: a swap in between handed alice a copy of bob's database, chowned to
// her (seen: 20 of 37 backups that succeeded). SQLite is now opened with
// alice's own filesystem rights, which cannot reach into bob's 0700 tree.
// Most backups fail while the swaps go on; the test runs until enough
// succeed to judge, within a deadline, and fails if none does.
func TestBackupPathRaceGetsNoOtherUsersDatabase(t *testing.T) {
	realtest.NeedRoot(t)
	alice, bob := twoHomes(t, t3test.EraC, func(alice, bob statebackup.Target) {
		setMarker(t, mustLive(t, alice), 1)
		setMarker(t, mustLive(t, bob), 2)
	})
	swapping(t, alice, bob)
	for _, m := range []statebackup.Method{statebackup.MethodBackupAPI, statebackup.MethodVacuumInto} {
		st := statebackup.NewStore(t.TempDir(), statebackup.Options{Method: m})
		ok, leaked := 0, 0
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; ok < 10 && time.Now().Before(deadline); i++ {
			snap, err := st.Backup(bg, alice, "")
			if err != nil {
				if testing.Verbose() && i%100 == 0 {
					t.Log(err)
				}
				continue
			}
			ok++
			if marker(t, snap.Path) != 1 {
				leaked++
			}
			os.Remove(snap.Path)
			os.Remove(snap.Path + statebackup.MetadataSuffix)
		}
		t.Logf("%s: %d backups taken, %d of them bob's", m, ok, leaked)
		require.NotZero(t, ok, "%s: no backup succeeded while the swaps ran: nothing judged", m)
		assert.Zero(t, leaked, "%s: alice got a copy of bob's database", m)
	}
}
