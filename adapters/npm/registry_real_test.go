package npm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/npm"
	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
)

// TestRegistryVerdaccio resolves tags on a real registry reached through npm
// config, including a nightly tag moved backward and back.
func TestRegistryVerdaccio(t *testing.T) {
	t.Parallel() // each has its own registry; npm calls mostly wait
	ctx := context.Background()
	start := time.Now().Add(-time.Second)
	reg := newFleetRegistry(t)
	r := npm.NewRegistry(npm.RegistryOptions{Env: reg.Env(), Logger: npmtest.Logger(t)})

	u, err := r.URL(ctx)
	require.NoError(t, err)
	require.Equal(t, reg.URL, u, "the registry comes from the private npm config")

	steps := []struct {
		name    string
		move    string // move nightly here first ("" = no move)
		channel string
		want    string
	}{
		{"latest", "", "latest", "0.0.25"},
		{"nightly", "", "nightly", "0.0.30-nightly.20260902.101"},
		{"nightly moved back one build", "0.0.30-nightly.20260901.100", "nightly", "0.0.30-nightly.20260901.100"},
		{"nightly moved back to a stable", "0.0.24", "nightly", "0.0.24"},
		{"nightly forward again", "0.0.30-nightly.20260902.101", "nightly", "0.0.30-nightly.20260902.101"},
	}
	for _, s := range steps {
		if s.move != "" {
			require.NoError(t, reg.MoveTag(ctx, "nightly", s.move), s.name)
		}
		rel, err := r.Resolve(ctx, s.channel)
		require.NoError(t, err, s.name)
		assert.Equal(t, s.want, rel.Version, s.name)
		assert.True(t, rel.Published.After(start) && rel.Published.Before(time.Now().Add(time.Second)),
			"%s: published %v", s.name, rel.Published)
	}

	_, err = r.Resolve(ctx, "beta")
	require.ErrorIs(t, err, npm.ErrUnknownTag)

	missing := npm.NewRegistry(npm.RegistryOptions{URL: reg.URL, Package: "t3-absent"})
	_, err = missing.Resolve(ctx, "latest")
	var he *npm.HTTPError
	require.ErrorAs(t, err, &he)
	assert.Equal(t, 404, he.Status)
}
