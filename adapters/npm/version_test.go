package npm_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/npm"
)

func TestValidVersion(t *testing.T) {
	cases := []struct {
		in string
		ok bool
	}{
		{"0.0.24", true},
		{"0.0.30-nightly.20260901.100", true},
		{"1.2.3-rc.1", true},
		{"", false},
		{"v0.0.24", false},           // not canonical
		{"0.0", false},               // two parts
		{"0.0.24.1", false},          // four parts
		{"00.0.24", false},           // leading zero
		{"~0.0.24", false},           // a range
		{"^0.0.24", false},           // a range
		{"0.0.24 || 0.0.25", false},  // a range
		{"latest", false},            // a tag
		{"-0.0.24", false},           // a flag
		{"0.0.24/../../etc", false},  // a path
		{"../0.0.24", false},         // a path
		{"0.0.24+build.1", false},    // metadata
		{"0.0.24\n", false},          // control
		{"0.0.24-nightly/x", false},  // a path
		{"0.0.24-nightly..1", false}, // empty part
	}
	for _, c := range cases {
		err := npm.ValidVersion(c.in)
		if c.ok {
			assert.NoError(t, err, "%q", c.in)
		} else {
			assert.ErrorIs(t, err, npm.ErrInvalidVersion, "%q", c.in)
		}
	}
}

func TestValidPackage(t *testing.T) {
	cases := []struct {
		in string
		ok bool
	}{
		{"t3", true},
		{"@acme/t3", true},
		{"", false},
		{"T3", false},
		{"../t3", false},
		{"t3/../x", false},
		{"-t3", false},
		{"t3@0.0.1", false},
	}
	for _, c := range cases {
		err := npm.ValidPackage(c.in)
		if c.ok {
			assert.NoError(t, err, "%q", c.in)
		} else {
			assert.ErrorIs(t, err, npm.ErrInvalidPackage, "%q", c.in)
		}
	}
}

func TestParseVersionOutput(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"t3 v0.0.24\n", "0.0.24"},
		{"t3 v0.0.30-nightly.20260901.100\n", "0.0.30-nightly.20260901.100"},
		{"\x1b[1mt3\x1b[0m \x1b[2mv0.0.25\x1b[0m\n", "0.0.25"},
		{"0.0.26\n", "0.0.26"},
		{"t3 vfoo\n", ""},
		{"", ""},
	}
	for _, c := range cases {
		got, err := npm.ParseVersionOutput(c.in)
		if c.want == "" {
			require.ErrorIs(t, err, npm.ErrInvalidVersion, "%q", c.in)
			continue
		}
		require.NoError(t, err, "%q", c.in)
		assert.Equal(t, c.want, got, "%q", c.in)
	}
}
