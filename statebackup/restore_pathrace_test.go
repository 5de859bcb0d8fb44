package statebackup_test

import (
	"bytes"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/internal/realtest"
	"github.com/t3fleet/t3fleet/statebackup"
)

// alice swaps her ~/.t3 with a symlink to bob's while root restores her
// database. The restore checkpoints the old database read-write, opened by
// SQLite by path: a swap between SQLite's own lstat walk and its open(2)
// of the database, its -wal or its -shm had root fold bob's WAL into bob's
// database (or into alice's, her main file with his WAL) and truncate it.
// Bob's server is running: his last commits sit in his WAL, which only he
// checkpoints. Every restore that reaches the checkpoint step with the
// swaps going on is a try; the test fails as soon as bob's files change.
func TestRestorePathRaceLeavesOtherUsersDatabaseAlone(t *testing.T) {
	realtest.NeedRoot(t)
	alice, bob := twoHomes(t, t3test.EraC, func(alice, bob statebackup.Target) {
		setMarker(t, mustLive(t, alice), 1)
		setMarker(t, mustLive(t, bob), 2)
	})
	var tries atomic.Int64
	st, _ := newStore(t, statebackup.Options{BeforeRestoreStep: func(s statebackup.RestoreStep) error {
		if s == statebackup.StepCheckpoint {
			tries.Add(1)
		}
		return nil
	}})
	snap, err := st.Backup(bg, alice, "")
	require.NoError(t, err)
	bobLive := mustLive(t, bob)
	commitUncheckpointed(t, bobLive, 3)
	before := readFiles(t, bobLive, bobLive+"-wal")
	require.NotEmpty(t, before[1], "bob's commit is in his WAL")

	stop := swapping(t, alice, bob)
	restored := 0
	deadline := time.Now().Add(20 * time.Second)
	for tries.Load() < 150 && time.Now().Before(deadline) {
		if err := st.Restore(bg, alice, snap); err == nil {
			restored++
		} else if testing.Verbose() && tries.Load()%50 == 0 {
			t.Log(err)
		}
		if !equalFiles(before, readFiles(t, bobLive, bobLive+"-wal")) {
			break
		}
	}
	stop()
	t.Logf("%d restores reached the checkpoint during the swaps, %d restored", tries.Load(), restored)
	require.NotZero(t, tries.Load(), "no restore reached the checkpoint while the swaps ran: nothing judged")
	after := readFiles(t, bobLive, bobLive+"-wal")
	assert.True(t, bytes.Equal(before[0], after[0]), "root wrote into bob's database (his WAL checkpointed into it?)")
	assert.True(t, bytes.Equal(before[1], after[1]), "root changed bob's WAL (%d bytes, was %d)", len(after[1]), len(before[1]))
	assert.Equal(t, 3, marker(t, bobLive), "bob's last commit")
	if restored > 0 {
		assert.Equal(t, 1, marker(t, mustLive(t, alice)), "alice's snapshot restored")
	}
}

// commitUncheckpointed sets the marker in the database at path in a
// commit left in its WAL, as a running server leaves its recent commits:
// the connection stays open (autocheckpoint off) until the test ends.
func commitUncheckpointed(t *testing.T, path string, v int) {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetBusyTimeout(5 * time.Second)
	require.NoError(t, sqlitex.ExecuteTransient(c, "PRAGMA wal_autocheckpoint=0", nil))
	require.NoError(t, sqlitex.ExecuteTransient(c, `UPDATE t3fleet_marker SET v = ?`,
		&sqlitex.ExecOptions{Args: []any{v}}))
}

// readFiles returns the contents of the files at paths (nil for a missing
// one).
func readFiles(t *testing.T, paths ...string) [][]byte {
	t.Helper()
	out := make([][]byte, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if !os.IsNotExist(err) {
			require.NoError(t, err)
		}
		out[i] = b
	}
	return out
}

func equalFiles(a, b [][]byte) bool {
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
