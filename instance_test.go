package t3fleet_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

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
