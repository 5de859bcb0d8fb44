package npmtest_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
)

func TestFindVerdaccio(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "verdaccio")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755))

	t.Setenv(npmtest.EnvVerdaccio, fake)
	got, err := npmtest.FindVerdaccio()
	require.NoError(t, err)
	assert.Equal(t, fake, got, "the env variable wins")

	t.Setenv(npmtest.EnvVerdaccio, fake+"-absent")
	_, err = npmtest.FindVerdaccio()
	require.ErrorIs(t, err, npmtest.ErrNoVerdaccio, "a wrong env path is an error, not a fallback")
}

// TestBinScript runs the generated bin script against a stand-in CLI that
// prints what it received.
func TestBinScript(t *testing.T) {
	dir := t.TempDir()
	cli := filepath.Join(dir, "it's a cli")
	require.NoError(t, os.WriteFile(cli, []byte("#!/bin/sh\n"+
		`echo "v=$T3FAKE_VERSION era=$T3FAKE_ERA faults=$T3FAKE_FAULTS"; for a in "$@"; do echo "arg=$a"; done`+"\n"), 0o755))

	cases := []struct {
		name string
		opts npmtest.PublishOptions
		args []string
		want string
		fail bool
	}{
		{name: "stand-in --version", args: []string{"--version"}, want: "t3 v0.0.25\n"},
		{name: "stand-in other verb", args: []string{"serve"}, fail: true},
		{name: "fake CLI", opts: npmtest.PublishOptions{CLI: cli, Era: "B", Faults: "no-cookie,slow start"},
			args: []string{"auth", "pairing create", "--json"},
			want: "v=0.0.25 era=B faults=no-cookie,slow start\narg=auth\narg=pairing create\narg=--json\n"},
		{name: "fake CLI without era", opts: npmtest.PublishOptions{CLI: cli}, args: []string{"--version"},
			want: "v=0.0.25 era= faults=\narg=--version\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			script := filepath.Join(t.TempDir(), "t3.sh")
			require.NoError(t, os.WriteFile(script, []byte(npmtest.BinScript("0.0.25", c.opts)), 0o755))
			cmd := exec.Command(script, c.args...)
			cmd.Env = append(os.Environ(), "T3FAKE_ERA=", "T3FAKE_FAULTS=")
			out, err := cmd.Output()
			if c.fail {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, string(out))
		})
	}
}

// TestRegistry publishes with npm and over HTTP, moves a tag backward, and
// installs from the registry with the private npm environment.
func TestRegistry(t *testing.T) {
	ctx := context.Background()
	reg := npmtest.New(t, npmtest.Options{})
	require.True(t, reg.Running())
	require.True(t, strings.HasPrefix(reg.URL, "http://127.0.0.1:"), reg.URL)

	require.NoError(t, reg.PublishT3(ctx, "0.0.24", "latest", npmtest.PublishOptions{ViaNPM: true}))
	require.NoError(t, reg.PublishT3(ctx, "0.0.30-nightly.20260901.100", "nightly", npmtest.PublishOptions{}))
	require.NoError(t, reg.PublishT3(ctx, "0.0.30-nightly.20260902.101", "nightly", npmtest.PublishOptions{ViaNPM: true}))
	require.Error(t, reg.PublishT3(ctx, "0.0.24", "latest", npmtest.PublishOptions{}), "a version is published once")
	require.Error(t, reg.PublishT3(ctx, "0.0.24 || 1", "latest", npmtest.PublishOptions{}))

	view := func(spec string) string {
		out, err := reg.NPM(ctx, t.TempDir(), "view", spec, "version")
		require.NoError(t, err)
		return strings.TrimSpace(string(out))
	}
	assert.Equal(t, "0.0.24", view("t3@latest"))
	assert.Equal(t, "0.0.30-nightly.20260902.101", view("t3@nightly"))
	require.NoError(t, reg.MoveTag(ctx, "nightly", "0.0.24"))
	assert.Equal(t, "0.0.24", view("t3@nightly"), "moved backward, no stale cache")
	require.Error(t, reg.MoveTag(ctx, "nightly", "../x"))

	_, err := reg.NPM(ctx, t.TempDir(), "install", "-g", "t3@0.0.30-nightly.20260901.100")
	require.NoError(t, err)
	out, err := exec.Command(filepath.Join(reg.GlobalPrefix(), "bin", "t3"), "--version").Output()
	require.NoError(t, err, "installed into the private global prefix")
	assert.Equal(t, "t3 v0.0.30-nightly.20260901.100\n", string(out))

	require.NoError(t, reg.Close())
	require.NoError(t, reg.Close(), "Close twice is fine")
	assert.False(t, reg.Running())
	_, err = http.Get(reg.URL + "-/ping")
	require.Error(t, err, "stopped")
}
