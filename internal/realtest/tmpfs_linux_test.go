package realtest_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/internal/realtest"
)

func TestTmpfsFills(t *testing.T) {
	dir := realtest.Tmpfs(t, 256<<10)
	filler := realtest.FillTo(t, dir, 0)
	err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600)
	require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
	require.NoError(t, os.Remove(filler))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600))
}
