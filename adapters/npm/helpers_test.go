package npm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
)

// The versions the real-registry tests publish, with their tags. The last
// publish for a tag wins, so latest=0.0.25 and nightly=...20260902.101.
var fleet = []struct{ version, tag string }{
	{"0.0.24", "latest"},
	{"0.0.25", "latest"},
	{"0.0.30-nightly.20260901.100", "nightly"},
	{"0.0.30-nightly.20260902.101", "nightly"},
}

// newFleetRegistry starts Verdaccio and publishes the fleet versions with the
// --version stand-in script.
func newFleetRegistry(t *testing.T) *npmtest.Registry {
	t.Helper()
	reg := npmtest.New(t, npmtest.Options{})
	for _, p := range fleet {
		require.NoError(t, reg.PublishT3(context.Background(), p.version, p.tag, npmtest.PublishOptions{}))
	}
	return reg
}
