package statebackup_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/internal/realtest"
	"github.com/t3fleet/t3fleet/statebackup"
)

// A user owns ~/.t3 and everything under it, so any directory on the way to
// their database can be a symlink into another user's tree, put there
// before a run or swapped in between two of its steps. These tests check
// that the updater then refuses, or keeps to the directory it checked,
// and never touches the other tree.

// entries lists the names in dir, sorted.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// pointAt replaces the directory at link with a symlink to target; the
// real directory is kept at link+".real".
func pointAt(t *testing.T, link, target string) {
	t.Helper()
	require.NoError(t, os.Rename(link, link+".real"))
	require.NoError(t, os.Symlink(target, link))
}

func TestBackupRefusesASymlinkedDirectory(t *testing.T) {
	cases := []struct {
		name string
		link func(alice, bob statebackup.Target) (string, string) // link, target
	}{
		{"~/.t3 points at bob's .t3", func(a, b statebackup.Target) (string, string) {
			return filepath.Dir(a.UserdataDir), filepath.Dir(b.UserdataDir)
		}},
		{"~/.t3/userdata points at bob's userdata", func(a, b statebackup.Target) (string, string) {
			return a.UserdataDir, b.UserdataDir
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bob := mustSeed(t, "bob", t3test.EraC, t3test.SeedOptions{})
			alice := mustSeed(t, "alice", t3test.EraC, t3test.SeedOptions{})
			if os.Geteuid() == 0 {
				chownTree(t, filepath.Dir(bob.UserdataDir), otherUID, otherGID)
			}
			before := entries(t, bob.UserdataDir)
			link, target := c.link(alice, bob)
			pointAt(t, link, target)

			st, dest := newStore(t, statebackup.Options{})
			_, err := st.Backup(bg, alice, "")
			require.ErrorIs(t, err, statebackup.ErrUnsafePath)
			assert.Contains(t, err.Error(), link+":", "the error names the symlink")
			assert.Equal(t, before, entries(t, bob.UserdataDir), "bob's directory untouched")
			// Only root can hand a directory to bob, so only root can see
			// that it was not.
			if fi, err := os.Lstat(filepath.Join(dest, "alice")); os.Geteuid() == 0 && err == nil {
				assert.NotEqual(t, uint32(otherUID), fi.Sys().(*syscall.Stat_t).Uid,
					"alice's snapshot directory was handed to bob")
			}
			snaps, err := st.List(bg, alice)
			require.NoError(t, err)
			assert.Empty(t, snaps)
		})
	}
}

// FixSidecars reads the database's owner and opens each sidecar by path: a
// user who flips ~/.t3 between their own directory and a symlink to bob's
// could have the owner read in theirs and bob's -wal and -shm opened (and
// handed to them) in bob's. Racy by nature: the flipping runs until the
// deadline; on the unsafe code it wins within a few hundred tries.
func TestFixSidecarsRaceWithAFlippedDirectory(t *testing.T) {
	realtest.NeedRoot(t)
	const bobUID, bobGID = 5151, 5252
	root := t.TempDir()
	mk := func(user string, uid, gid int) string {
		ud := filepath.Join(root, user, ".t3", "userdata")
		require.NoError(t, os.MkdirAll(ud, 0o755))
		for _, n := range []string{"state.sqlite", "state.sqlite-wal", "state.sqlite-shm"} {
			require.NoError(t, os.WriteFile(filepath.Join(ud, n), []byte("x"), 0o600))
		}
		chownTree(t, filepath.Join(root, user), uid, gid)
		return ud
	}
	bobUD := mk("bob", bobUID, bobGID)
	aliceUD := mk("alice", otherUID, otherGID)
	aliceT3 := filepath.Dir(aliceUD)
	flip := filepath.Join(root, "alice", ".t3.flip")
	require.NoError(t, os.Symlink(filepath.Dir(bobUD), flip))

	stop := make(chan struct{})
	flipped := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				flipped <- nil
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, aliceT3, unix.AT_FDCWD, flip, unix.RENAME_EXCHANGE); err != nil {
				flipped <- err
				return
			}
		}
	}()
	bobsSidecarsHis := func() bool {
		for _, s := range []string{"-wal", "-shm"} {
			fi, err := os.Lstat(filepath.Join(bobUD, "state.sqlite"+s))
			require.NoError(t, err)
			if fi.Sys().(*syscall.Stat_t).Uid != bobUID {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(2 * time.Second)
	tries := 0
	for time.Now().Before(deadline) && bobsSidecarsHis() {
		err := statebackup.FixSidecars(filepath.Join(aliceUD, "state.sqlite"))
		if err != nil && !errors.Is(err, statebackup.ErrUnsafePath) && !errors.Is(err, os.ErrNotExist) {
			t.Logf("FixSidecars: %v", err)
		}
		tries++
	}
	close(stop)
	require.NoError(t, <-flipped)
	assert.True(t, bobsSidecarsHis(), "bob's -wal/-shm were handed to alice after %d tries", tries)
}
