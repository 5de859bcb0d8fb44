package npm_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/npm"
	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
	"github.com/t3fleet/t3fleet/internal/realtest"
)

const packument = `{"name":"t3","dist-tags":{"latest":"0.0.25","nightly":"0.0.30-nightly.20260902.101","bad":"0.0.25 || 1"},
"time":{"created":"2026-09-01T00:00:00.000Z","0.0.25":"2026-09-01T10:00:00.000Z","0.0.30-nightly.20260902.101":"2026-09-02T03:04:05.678Z"}}`

// TestRegistryHTTP covers the answers a registry can give, with a fake
// registry that asserts on what it receives.
func TestRegistryHTTP(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		body        string
		channel     string
		want        string
		wantPub     time.Time
		wantErrIs   error
		wantHTTPErr int
	}{
		{name: "latest", status: 200, body: packument, channel: "latest", want: "0.0.25",
			wantPub: time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)},
		{name: "nightly", status: 200, body: packument, channel: "nightly", want: "0.0.30-nightly.20260902.101",
			wantPub: time.Date(2026, 9, 2, 3, 4, 5, 678e6, time.UTC)},
		{name: "unknown tag", status: 200, body: packument, channel: "beta", wantErrIs: npm.ErrUnknownTag},
		{name: "tag is a range", status: 200, body: packument, channel: "bad", wantErrIs: npm.ErrBadPackument},
		{name: "no publish time", status: 200, body: `{"dist-tags":{"latest":"0.0.26"}}`, channel: "latest", want: "0.0.26"},
		{name: "bad json", status: 200, body: `{"dist-tags":`, channel: "latest", wantErrIs: npm.ErrBadPackument},
		{name: "not a packument", status: 200, body: `{"error":"x"}`, channel: "latest", wantErrIs: npm.ErrBadPackument},
		{name: "not found", status: 404, body: `{"error":"no such package available"}`, channel: "latest", wantHTTPErr: 404},
		{name: "server error", status: 503, body: `down`, channel: "latest", wantHTTPErr: 503},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				assert.Equal(t, "/t3", r.URL.Path)
				assert.Equal(t, "Bearer tok", r.Header.Get("Authorization"))
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			reg := npm.NewRegistry(npm.RegistryOptions{URL: srv.URL + "/", Token: "tok"})
			rel, err := reg.Resolve(context.Background(), c.channel)
			switch {
			case c.wantErrIs != nil:
				require.ErrorIs(t, err, c.wantErrIs)
			case c.wantHTTPErr != 0:
				var he *npm.HTTPError
				require.ErrorAs(t, err, &he)
				assert.Equal(t, c.wantHTTPErr, he.Status)
			default:
				require.NoError(t, err)
				assert.Equal(t, c.want, rel.Version)
				assert.True(t, c.wantPub.Equal(rel.Published), "published %v, want %v", rel.Published, c.wantPub)
			}
		})
	}
}

// npmWithoutRegistryEnv skips without npm (fails under the require-real
// variable) and clears a registry set in this process's environment, which
// would win over the config files these tests are about, as in npm.
func npmWithoutRegistryEnv(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(npm.DefaultNPM); err != nil {
		realtest.Missing(t, "npm not installed: %v", err)
	}
	for _, k := range []string{"NPM_CONFIG_REGISTRY", "npm_config_registry"} {
		t.Setenv(k, "")
		require.NoError(t, os.Unsetenv(k))
	}
}

// TestRegistryFromNpmConfig checks that the registry and its token come from
// npm's config when no URL is given.
func TestRegistryFromNpmConfig(t *testing.T) {
	npmWithoutRegistryEnv(t)
	var gotAuth, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.Path
		_, _ = w.Write([]byte(`{"dist-tags":{"latest":"0.0.25"}}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	rc := filepath.Join(dir, "npmrc")
	host := srv.Listener.Addr().String()
	require.NoError(t, os.WriteFile(rc, []byte("registry="+srv.URL+"/reg/\n"+
		"//"+host+"/other/:_authToken=wrong\n"+
		"//"+host+"/reg/:_authToken=${T3FLEET_TEST_TOKEN}\n"), 0o600))
	reg := npm.NewRegistry(npm.RegistryOptions{
		Package: "@acme/t3",
		Env: []string{"NPM_CONFIG_USERCONFIG=" + rc, "NPM_CONFIG_CACHE=" + filepath.Join(dir, "cache"),
			"T3FLEET_TEST_TOKEN=from-env"},
		Logger: npmtest.Logger(t),
	})
	rel, err := reg.Resolve(context.Background(), "latest")
	require.NoError(t, err)
	assert.Equal(t, "0.0.25", rel.Version)
	assert.Equal(t, "Bearer from-env", gotAuth)
	assert.Equal(t, "/reg/@acme/t3", gotPath)
	u, err := reg.URL(context.Background())
	require.NoError(t, err)
	assert.Equal(t, srv.URL+"/reg/", u)
}

// The token may sit in npm's global config (<npm prefix>/etc/npmrc, where a root
// service keeps it) rather than the user's: npm install uses it, and so
// must Resolve; a token in the user's config wins, as in npm.
func TestRegistryTokenFromGlobalConfig(t *testing.T) {
	npmWithoutRegistryEnv(t)
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		_, _ = w.Write([]byte(`{"dist-tags":{"latest":"0.0.25"}}`))
	}))
	defer srv.Close()
	host := srv.Listener.Addr().String()
	for _, tc := range []struct {
		name, user, want string
	}{
		{"global only", "registry=" + srv.URL + "/\n", "Bearer g-token"},
		{"the user's wins", "registry=" + srv.URL + "/\n//" + host + "/:_authToken=u-token\n", "Bearer u-token"},
		{"after a line over 64 KiB", "registry=" + srv.URL + "/\n# " + strings.Repeat("x", 70<<10) + "\n//" + host + "/:_authToken=u-token\n", "Bearer u-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			user, global := filepath.Join(dir, "npmrc"), filepath.Join(dir, "global-npmrc")
			require.NoError(t, os.WriteFile(user, []byte(tc.user), 0o600))
			require.NoError(t, os.WriteFile(global, []byte("//"+host+"/:_authToken=g-token\n"), 0o600))
			reg := npm.NewRegistry(npm.RegistryOptions{
				Env: []string{"NPM_CONFIG_USERCONFIG=" + user, "NPM_CONFIG_GLOBALCONFIG=" + global,
					"NPM_CONFIG_CACHE=" + filepath.Join(dir, "cache")},
				Logger: npmtest.Logger(t),
			})
			_, err := reg.Resolve(context.Background(), "latest")
			require.NoError(t, err)
			require.Equal(t, tc.want, gotAuth)
		})
	}
}
