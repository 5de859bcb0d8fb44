package npm_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/npm"
	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
	"github.com/t3fleet/t3fleet/rollout"
)

// TestGlobal drives the seed's `npm i -g` layout against a real registry.
func TestGlobal(t *testing.T) {
	t.Parallel() // each has its own registry; npm calls mostly wait
	ctx := context.Background()
	reg := newFleetRegistry(t)
	prefix := filepath.Join(t.TempDir(), "global")
	g, err := npm.NewGlobal(npm.GlobalOptions{Prefix: prefix, Env: reg.Env(), Logger: npmtest.Logger(t)})
	require.NoError(t, err)

	assertCurrent(t, g, "") // nothing installed

	probing, err := npm.NewGlobal(npm.GlobalOptions{Prefix: prefix, Env: reg.Env(), ProbeVersion: true})
	require.NoError(t, err)
	assertCurrent(t, probing, "")

	b, err := g.Stage(ctx, "0.0.25")
	require.NoError(t, err)
	assert.Equal(t, rollout.Build{Version: "0.0.25"}, b, "a global stage installs nothing")
	assertCurrent(t, g, "") // nothing installed

	steps := []string{"0.0.25", "0.0.30-nightly.20260901.100", "0.0.24"} // forward, then back
	for _, v := range steps {
		require.NoError(t, g.Activate(ctx, rollout.Build{Version: v}))
		assertCurrent(t, g, v)
		assertBinVersion(t, filepath.Join(prefix, "bin", "t3"), v)
	}
	assertCurrent(t, probing, "0.0.24")

	require.NoError(t, g.Drop(ctx, "0.0.25"))
	require.ErrorIs(t, g.Drop(ctx, "../x"), npm.ErrInvalidVersion)
	require.ErrorIs(t, g.Activate(ctx, rollout.Build{Version: "latest"}), npm.ErrInvalidVersion)
	var ce *npm.CommandError
	require.ErrorAs(t, g.Activate(ctx, rollout.Build{Version: "0.0.99"}), &ce)
	assertCurrent(t, g, "0.0.24")
}
