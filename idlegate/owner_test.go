package idlegate_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/internal/realtest"
)

// As root, a verdict on a database owned by another uid with no -shm must
// leave every file in its directory with that uid: the gate reads with
// that uid's filesystem rights, so SQLite creates the -shm as that uid.
func TestDBOracleAsRootLeavesNoRootOwnedFiles(t *testing.T) {
	realtest.NeedRoot(t)
	const uid, gid = 4242, 4343
	base := filepath.Join(t.TempDir(), ".t3")
	seed(t3test.EraD, 0)(t, base)
	ud := t3test.UserDataDir(base)
	realtest.OpenPath(t, base) // the user reads their own database: their path is traversable, as a real home is
	_, err := os.Stat(filepath.Join(ud, "state.sqlite-shm"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NoError(t, filepath.WalkDir(ud, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		return os.Lchown(p, uid, gid)
	}))

	o := idlegate.NewDBOracle(idlegate.DBOptions{Now: func() time.Time { return t0.Add(time.Hour) }})
	v, err := o.Idle(bg, instance(base))
	require.NoError(t, err)
	assert.True(t, v.Idle)
	require.NoError(t, filepath.WalkDir(ud, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		fi, err := os.Lstat(p)
		require.NoError(t, err)
		assert.Equal(t, uint32(uid), fi.Sys().(*syscall.Stat_t).Uid, p)
		return nil
	}))
}
