package realtest_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/internal/realtest"
)

// The swapper's dir is now the symlink, now the directory; stop leaves the
// directory there.
func TestSwapWithSymlink(t *testing.T) {
	root := t.TempDir()
	dir, target := filepath.Join(root, "alice"), filepath.Join(root, "bob")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Mkdir(target, 0o755))
	stop := realtest.SwapWithSymlink(t, dir, target)
	seen := map[bool]bool{}
	for deadline := time.Now().Add(5 * time.Second); len(seen) < 2 && time.Now().Before(deadline); {
		if fi, err := os.Lstat(dir); err == nil {
			seen[fi.Mode()&os.ModeSymlink != 0] = true
		}
	}
	stop()
	require.Len(t, seen, 2, "dir seen as a directory and as a symlink (true)")
	fi, err := os.Lstat(dir)
	require.NoError(t, err)
	require.True(t, fi.IsDir(), "the directory is back after stop")
}
