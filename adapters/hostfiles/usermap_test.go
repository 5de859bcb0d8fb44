package hostfiles_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/hostfiles"
)

func TestParseUserMap(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []string // "sso=os"
		badLine []int
	}{
		{"seed file", "# sso=os\nemil.barzin=emil\n\n  ana = ana \n", []string{"emil.barzin=emil", "ana=ana"}, nil},
		{"comment after blank", "\n\n# x=y\nbob=bob", []string{"bob=bob"}, nil},
		{"traversal in os user", "eve=../root\nbob=bob\n", []string{"bob=bob"}, []int{1}},
		{"slash in os user", "eve=a/b\n", nil, []int{1}},
		{"bad sso", "../x=bob\n", nil, []int{1}},
		{"no equals", "bob\n", nil, []int{1}},
		{"duplicate sso, first wins", "bob=bob\nbob=eve\n", []string{"bob=bob"}, []int{2}},
		{"two sso users, one account", "a=ops\nb=ops\n", []string{"a=ops", "b=ops"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := hostfiles.ParseUserMap("map", []byte(c.in))
			var got []string
			for _, e := range m {
				got = append(got, e.SSO+"="+e.OSUser)
			}
			assert.Equal(t, c.want, got)
			if c.badLine == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, l := range c.badLine {
				assert.Contains(t, err.Error(), "map:"+strconv.Itoa(l)+":")
			}
		})
	}
}

func TestUserMapHelpers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ttyd-user-map")
	require.NoError(t, os.WriteFile(p, []byte("z.z=zed\na=ops\nb=ops\n"), 0o644))
	m, err := hostfiles.ReadUserMap(p)
	require.NoError(t, err)
	assert.Equal(t, []string{"ops", "zed"}, m.OSUsers())
	u, ok := m.Lookup("b")
	assert.True(t, ok)
	assert.Equal(t, "ops", u)
	_, err = hostfiles.ReadUserMap(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = hostfiles.ParseUserMap("m", []byte("x=../../etc\n"))
	assert.ErrorIs(t, err, t3fleet.ErrInvalidName)
}
