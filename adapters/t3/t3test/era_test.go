package t3test_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

func TestEraFor(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    t3test.Era
	}{
		{"0.0.1", t3test.EraA},
		{"0.0.24", t3test.EraA},
		{"v0.0.24", t3test.EraA},
		{"0.0.25", t3test.EraB},
		{"0.0.25-nightly.20260601.500", t3test.EraB},
		{"0.0.27", t3test.EraB},
		{"0.0.28-nightly.20260616.571", t3test.EraC},
		{"0.0.28", t3test.EraC},
		{"0.0.35", t3test.EraC},
		{"0.0.36", t3test.EraD},
		{"0.0.45", t3test.EraD},
		{"0.0.46", t3test.EraE},
		{"0.0.99-nightly.20270101.1", t3test.EraE},
		{"0.1.0", t3test.EraE},
		{"", ""},
		{"latest", ""},
		{"0.0", ""},
		{"0.0.x", ""},
	} {
		assert.Equal(t, tc.want, t3test.EraFor(tc.version), "EraFor(%q)", tc.version)
	}
}

func TestDefaultVersionRoundTrips(t *testing.T) {
	for _, e := range t3test.Eras() {
		v := t3test.DefaultVersion(e)
		assert.NotEmpty(t, v, "era %s", e)
		assert.Equal(t, e, t3test.EraFor(v), "DefaultVersion(%s)=%s", e, v)
	}
	assert.Empty(t, t3test.DefaultVersion("Z"))
}

func TestEraTraits(t *testing.T) {
	for _, tc := range []struct {
		era     t3test.Era
		level   int
		path    string
		scopes  bool
		perEnv  bool
		stateV2 bool
	}{
		{t3test.EraA, 30, "/api/auth/bootstrap", false, false, false},
		{t3test.EraB, 30, "/api/auth/browser-session", false, false, false},
		{t3test.EraC, 32, "/api/auth/browser-session", true, false, false},
		{t3test.EraD, 32, "/api/auth/browser-session", true, true, false},
		{t3test.EraE, 34, "/api/auth/browser-session", true, true, true},
	} {
		assert.Equal(t, tc.level, tc.era.SchemaLevel(), "era %s", tc.era)
		assert.Equal(t, tc.path, tc.era.PairingPath(), "era %s", tc.era)
		assert.Equal(t, tc.scopes, tc.era.UsesScopes(), "era %s", tc.era)
		assert.Equal(t, tc.perEnv, tc.era.PerEnvironmentCookie(), "era %s", tc.era)
		assert.Equal(t, tc.stateV2, tc.era.UsesStateV2(), "era %s", tc.era)
	}
}
