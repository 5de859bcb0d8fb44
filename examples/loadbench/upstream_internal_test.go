package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A Go runtime setting given for a run reaches the dispatch, not the
// instance standing in for t3 (a Node program).
func TestUpstreamEnvLeavesOutGoRuntimeSettings(t *testing.T) {
	cases := []struct {
		name string
		in   []string
		want []string
	}{
		{"nothing to leave out", []string{"PATH=/bin", "HOME=/root"}, []string{"PATH=/bin", "HOME=/root"}},
		{"runtime settings", []string{"GODEBUG=schedtrace=1", "PATH=/bin", "GOGC=400", "GOMAXPROCS=1", "GOMEMLIMIT=1GiB"}, []string{"PATH=/bin"}},
		{"names that only begin alike", []string{"GODEBUGX=1", "GOGC_NOTE=x"}, []string{"GODEBUGX=1", "GOGC_NOTE=x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, upstreamEnv(c.in))
		})
	}
}
