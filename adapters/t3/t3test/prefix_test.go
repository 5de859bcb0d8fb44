package t3test_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

func TestWritePrefixAndSwitchCurrent(t *testing.T) {
	prefix := t.TempDir()
	builds := map[string]t3test.Faults{"0.0.27": {}, "0.0.30": {}}
	require.NoError(t, t3test.WritePrefix(prefix, t3test.BuildCLI(t), builds, "0.0.27"))
	current := filepath.Join(prefix, "current", "t3")
	for _, v := range []string{"0.0.27", "0.0.30"} {
		require.NoError(t, t3test.SwitchCurrent(prefix, v))
		out, err := exec.Command(current, "--version").Output()
		require.NoError(t, err)
		assert.Equal(t, "t3 v"+v+"\n", string(out))
		target, err := os.Readlink(filepath.Join(prefix, "current"))
		require.NoError(t, err)
		assert.Equal(t, filepath.Join("versions", v), target)
	}
	_, err := os.Lstat(filepath.Join(prefix, "current.tmp"))
	assert.True(t, os.IsNotExist(err), "no temporary link left behind")
	assert.Error(t, t3test.WritePrefix(t.TempDir(), "/bin/true", map[string]t3test.Faults{"latest": {}}, "latest"))
}

func TestServerVersion(t *testing.T) {
	srv := t3test.NewServer(t.TempDir(), t3test.Options{Era: t3test.EraC})
	t.Cleanup(srv.Close)
	v, err := t3test.ServerVersion(context.Background(), srv.URL+"/")
	require.NoError(t, err)
	assert.Equal(t, t3test.DefaultVersion(t3test.EraC), v)

	srv.Close()
	_, err = t3test.ServerVersion(context.Background(), srv.URL)
	assert.Error(t, err, "nobody answers")
}
