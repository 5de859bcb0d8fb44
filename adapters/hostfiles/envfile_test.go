package hostfiles_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/rollout"
)

func TestParseEnvFile(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want map[string]string
		bad  bool
	}{
		{"seed", "T3_PORT=3801\n", map[string]string{"T3_PORT": "3801"}, false},
		{"comments, quotes, export", "# c\n; c\nexport A=\"x y\"\nB='z'\nC = 1 \n", map[string]string{"A": "x y", "B": "z", "C": "1"}, false},
		{"later wins", "A=1\nA=2\n", map[string]string{"A": "2"}, false},
		{"malformed kept apart", "A=1\nnot a line\n9X=2\n", map[string]string{"A": "1"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := hostfiles.ParseEnvFile("env", []byte(c.in))
			assert.Equal(t, c.want, got)
			if c.bad {
				assert.ErrorIs(t, err, hostfiles.ErrMalformedLine)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

func TestPort(t *testing.T) {
	for in, want := range map[string]int{"3801": 3801, "0": 0, "70000": 0, "x": 0} {
		p, err := hostfiles.Port(map[string]string{"T3_PORT": in})
		assert.Equal(t, want, p, in)
		assert.Equal(t, want == 0, err != nil, in)
	}
	_, err := hostfiles.Port(map[string]string{})
	assert.Error(t, err)
}

func TestEnvFilePath(t *testing.T) {
	dir := t.TempDir()
	p, err := hostfiles.EnvFilePath(dir, "emil")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "emil.env"), p)
	require.NoError(t, os.WriteFile(p, []byte("T3_PORT=3801\n"), 0o644))
	env, err := hostfiles.ReadEnvFile(p)
	require.NoError(t, err)
	port, err := hostfiles.Port(env)
	require.NoError(t, err)
	assert.Equal(t, 3801, port)
	for _, u := range []string{"../etc/passwd", "a/b", ""} {
		_, err := hostfiles.EnvFilePath(dir, u)
		assert.ErrorIs(t, err, t3fleet.ErrInvalidName, u)
	}
	p, err = hostfiles.EnvFilePath("", "emil")
	require.NoError(t, err)
	assert.Equal(t, "/etc/t3-serve/emil.env", p)
}

func TestEnvFileBaseURL(t *testing.T) {
	dir := t.TempDir()
	m := func(u string) rollout.Unit { return rollout.Unit{User: u} }
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.env"), []byte("# port\nT3_PORT='3801'\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.env"), []byte("OTHER=1\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "c.env"), []byte("T3_PORT=99999\n"), 0o644))
	got, err := hostfiles.EnvFileBaseURL(dir)(m("a"))
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:3801", got)
	for _, u := range []string{"b", "c", "missing", "../etc"} {
		_, err := hostfiles.EnvFileBaseURL(dir)(m(u))
		require.ErrorIs(t, err, rollout.ErrProvisioning, u)
	}
}
