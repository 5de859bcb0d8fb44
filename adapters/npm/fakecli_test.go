package npm_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/npm"
	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// TestSideBySideFakeCLI installs builds whose bin runs the t3test fake CLI,
// the way the rollout end-to-end tests do, and checks each staged bin plays
// its own version while the stable bin follows current.
func TestSideBySideFakeCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cli := t3test.BuildCLI(t)
	reg := npmtest.New(t, npmtest.Options{})
	builds := []struct{ version, tag, era string }{
		{"0.0.24", "latest", "A"},
		{"0.0.30-nightly.20260902.101", "nightly", "D"},
	}
	for _, b := range builds {
		require.NoError(t, reg.PublishT3(ctx, b.version, b.tag, npmtest.PublishOptions{CLI: cli, Era: b.era}))
	}
	inst, err := npm.NewSideBySide(filepath.Join(t.TempDir(), "t3"), npm.SideBySideOptions{Env: reg.Env(), Logger: npmtest.Logger(t)})
	require.NoError(t, err)
	for _, b := range builds {
		staged, err := inst.Stage(ctx, b.version)
		require.NoError(t, err)
		out, err := exec.Command(staged.Bin, "--version").Output()
		require.NoError(t, err)
		assert.Equal(t, "t3 v"+b.version+"\n", string(out))
		require.NoError(t, inst.Activate(ctx, staged))
		assertBinVersion(t, inst.Bin(), b.version)
	}
	old, err := inst.BinFor(builds[0].version)
	require.NoError(t, err)
	assertBinVersion(t, old, builds[0].version)
}
