package statebackup_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
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

const otherUID, otherGID = 4242, 4343

// chownTree gives every file under dir to uid:gid.
func chownTree(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}))
}

// assertOwnedBy checks every entry under dir belongs to uid.
func assertOwnedBy(t *testing.T, dir string, uid int) {
	t.Helper()
	n := 0
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		n++
		assert.Equal(t, uint32(uid), fi.Sys().(*syscall.Stat_t).Uid, "owner of %s", p)
		return nil
	}))
	assert.Greater(t, n, 1)
}

// As root, snapshotting and restoring a database owned by another uid must
// leave no root-owned file in that user's data directory: a root-owned -shm
// would lock the user's own server out.
func TestRootLeavesNoRootOwnedFiles(t *testing.T) {
	realtest.NeedRoot(t)
	cases := []struct {
		name string
		era  t3test.Era
		wal  bool // leave a -wal (no -shm), as a killed server does
	}{
		{"clean, no sidecars", t3test.EraC, false},
		{"wal without shm", t3test.EraC, true},
		{"statev2", t3test.EraE, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg := mustSeed(t, "emil", c.era, t3test.SeedOptions{BulkRows: 100})
			setMarker(t, mustLive(t, tg), 1)
			if c.wal {
				tg = killedServerImage(t, tg, 2)
			}
			live := mustLive(t, tg)
			_, err := os.Stat(live + "-shm")
			require.ErrorIs(t, err, os.ErrNotExist, "no -shm before the snapshot")
			chownTree(t, tg.UserdataDir, otherUID, otherGID)
			realtest.OpenPath(t, tg.UserdataDir) // the user reaches their own directory

			st, dest := newStore(t, statebackup.Options{})
			snap, err := st.Backup(bg, tg, "")
			require.NoError(t, err)
			_, err = os.Stat(live + "-shm")
			require.NoError(t, err, "the scenario: the root open did create a -shm")
			assertOwnedBy(t, tg.UserdataDir, otherUID)
			assertOwnedBy(t, filepath.Join(dest, "emil"), otherUID)
			fi, err := os.Stat(snap.Path)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

			_, err = idleProbe(live)
			require.NoError(t, err)
			require.NoError(t, st.Restore(bg, tg, snap))
			assertOwnedBy(t, tg.UserdataDir, otherUID)
		})
	}
}

// idleProbe reads the database read-only the way a status command would,
// then fixes sidecars as every root open must.
func idleProbe(path string) (int, error) {
	c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		return 0, err
	}
	n := 0
	err = sqlitex.ExecuteTransient(c, "SELECT count(*) FROM sqlite_master", &sqlitex.ExecOptions{
		ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil }})
	c.Close()
	if ferr := statebackup.FixSidecars(path); err == nil {
		err = ferr
	}
	return n, err
}

func TestBackupBusyIsReported(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "userdata")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	db := filepath.Join(dir, statebackup.StateDB)
	c, err := sqlite.OpenConn(db, sqlite.OpenReadWrite|sqlite.OpenCreate)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, sqlitex.ExecuteScript(c, `PRAGMA journal_mode=delete; CREATE TABLE t (x); INSERT INTO t VALUES (1);`, nil))
	require.NoError(t, sqlitex.ExecuteTransient(c, "BEGIN EXCLUSIVE", nil))
	defer sqlitex.ExecuteTransient(c, "ROLLBACK", nil)

	st, _ := newStore(t, statebackup.Options{BusyTimeout: 100 * time.Millisecond})
	start := time.Now()
	_, err = st.Backup(bg, statebackup.Target{User: "emil", UserdataDir: dir}, "")
	assert.ErrorIs(t, err, statebackup.ErrBusy)
	assert.Less(t, time.Since(start), 30*time.Second, "busy is retried briefly, not forever")
}

// FixSidecars chowns by descriptor and only a sidecar with one link: a
// user who hard-links or symlinks a root file under a sidecar's name in
// their own directory must not be handed that file.
func TestFixSidecarsLeavesPlantedLinksAlone(t *testing.T) {
	realtest.NeedRoot(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "state.sqlite")
	require.NoError(t, os.WriteFile(db, nil, 0o600))
	require.NoError(t, os.Chown(db, otherUID, otherGID))
	secret := filepath.Join(dir, "shadow") // root's, same filesystem (hard links need one)
	require.NoError(t, os.WriteFile(secret, []byte("root:x"), 0o600))
	other := filepath.Join(t.TempDir(), "passwd")
	require.NoError(t, os.WriteFile(other, []byte("root:x"), 0o600))
	require.NoError(t, os.Link(secret, db+"-wal"))
	require.NoError(t, os.Symlink(other, db+"-shm"))
	require.NoError(t, os.WriteFile(db+"-journal", nil, 0o600)) // a real root-created sidecar

	require.NoError(t, statebackup.FixSidecars(db))
	for _, p := range []string{secret, other} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, uint32(0), fi.Sys().(*syscall.Stat_t).Uid, "%s was handed to the user", p)
	}
	fi, err := os.Lstat(db + "-journal")
	require.NoError(t, err)
	require.Equal(t, uint32(otherUID), fi.Sys().(*syscall.Stat_t).Uid, "a real sidecar is still fixed")
}
