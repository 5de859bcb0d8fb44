package t3fleet_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
)

func TestValidSSOName(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"alice", true},
		{"emil.barzin", true},
		{"A_b-9", true},
		{"", false},
		{".", false},
		{"..", false},
		{"../etc", false},
		{"a/b", false},
		{"-rf", false},
		{"a b", false},
		{"a\x00b", false},
		{"émil", false},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
	} {
		err := t3fleet.ValidSSOName(tc.in)
		assert.Equal(t, tc.ok, err == nil, "%q: %v", tc.in, err)
		if err != nil {
			assert.ErrorIs(t, err, t3fleet.ErrInvalidName)
		}
	}
}

func TestValidOSUser(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"alice", true},
		{"_svc", true},
		{"a1-b_c", true},
		{"Alice", false},
		{"1alice", false},
		{"emil.barzin", false},
		{"../root", false},
		{"a;rm -rf", false},
		{"", false},
		{strings.Repeat("a", 32), true},
		{strings.Repeat("a", 33), false},
	} {
		err := t3fleet.ValidOSUser(tc.in)
		assert.Equal(t, tc.ok, err == nil, "%q: %v", tc.in, err)
	}
}

// The byte loops must accept exactly what the documented patterns accept.
func FuzzNamesMatchTheirPatterns(f *testing.F) {
	osUser := regexp.MustCompile(t3fleet.OSUserPattern)
	ssoChars := regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	for _, s := range []string{"", "a", "_", "-a", "0a", "emil.barzin", "a-b_c9", "Ana", "a b", "a\n", strings.Repeat("a", 32), strings.Repeat("a", 33), "é", "..", ".hidden"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		require.Equal(t, osUser.MatchString(s), t3fleet.ValidOSUser(s) == nil, "OS user %q", s)
		wantSSO := ssoChars.MatchString(s) && len(s) <= t3fleet.MaxSSONameLen && s[0] != '.' && s[0] != '-'
		require.Equal(t, wantSSO, t3fleet.ValidSSOName(s) == nil, "SSO name %q", s)
	})
}
