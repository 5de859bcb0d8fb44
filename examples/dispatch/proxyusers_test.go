package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/pairing"
)

func TestParseProxyUsers(t *testing.T) {
	tests := []struct {
		in   string
		want []uint32
		err  bool
	}{
		{"", nil, false},
		{"  ", nil, false},
		{"root", []uint32{0}, false},
		{"990", []uint32{990}, false},
		{" root , 65534 ", []uint32{0, 65534}, false},
		{"0,,1000,", []uint32{0, 1000}, false},
		{"4294967295", []uint32{4294967295}, false},
		{"4294967296", nil, true},
		{"12ab", nil, true},
		{"-1", nil, true},
		{"t3fleet-no-such-user", nil, true},
		{"root,t3fleet-no-such-user", nil, true},
		{",", nil, true},
	}
	for _, tc := range tests {
		got, err := parseProxyUsers(tc.in)
		if tc.err {
			assert.Error(t, err, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
}

func TestTrustsLoopback(t *testing.T) {
	tests := []struct {
		trusted string
		want    bool
	}{
		{"127.0.0.0/8,::1/128", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"0.0.0.0/0", true},
		{"10.0.0.0/8", false},
		{"10.0.0.0/8,fd00::/8", false},
		{"::ffff:127.0.0.1", false}, // never matches: peers are unmapped first
		{"", false},
	}
	for _, tc := range tests {
		p, err := pairing.ParseTrustedProxies(tc.trusted)
		require.NoError(t, err)
		assert.Equal(t, tc.want, trustsLoopback(p), tc.trusted)
	}
}

// emptyTable is a routing table with nobody in it, for runs that only
// start.
func emptyTable(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dispatch.json")
	require.NoError(t, os.WriteFile(p, []byte(`{}`), 0o644))
	return p
}

// Without -trusted-proxy-users, a dispatch that trusts loopback says at
// startup that any local user can assert any identity, and names the flag.
func TestRunWarnsWhenLoopbackIsUnchecked(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		warn, info bool
	}{
		{"defaults", nil, true, false},
		{"loopback among others", []string{"-trusted-proxies", "10.0.0.7,127.0.0.1"}, true, false},
		{"no loopback", []string{"-trusted-proxies", "10.0.0.7"}, false, false},
		{"owner check on", []string{"-trusted-proxy-users", strconv.Itoa(os.Getuid())}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, logs := startRun(t, append([]string{"-table", emptyTable(t)}, tc.args...)...)
			once := map[bool]int{true: 1} // the line once, or not at all
			assert.Equal(t, once[tc.warn], logs.Count("level=WARN", "any local user can assert any identity over loopback", "-trusted-proxy-users"), logs.String())
			assert.Equal(t, once[tc.info], logs.Count("level=INFO", "only from the trusted proxy users' sockets", "uids=["+strconv.Itoa(os.Getuid())+"]"), logs.String())
		})
	}
}
