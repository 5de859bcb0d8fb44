package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/t3fleet/t3fleet/internal/realtest"
)

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"short duration", []string{"-duration", "500ms"}},
		{"no connections", []string{"-connections", "0"}},
		{"more threads than connections", []string{"-threads", "4", "-connections", "2"}},
		{"no runs", []string{"-runs", "0"}},
		{"unknown path", []string{"-only", "websocket"}},
		{"relative asset path", []string{"-asset-path", "assets/app.js"}},
		{"stray argument", []string{"extra"}},
		{"unknown flag", []string{"-nope"}},
		{"two baselines", []string{"-bare", "-net-http"}},
		{"plain I/O of a relay", []string{"-relay", "-plain-io"}},
		{"plain I/O of nginx", []string{"-nginx", "-plain-io"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.Equal(t, 2, run(context.Background(), tt.args, &out, &errOut))
			require.NotEmpty(t, errOut.String())
			require.Empty(t, out.String())
		})
	}
}

func TestRunWithoutWrkFailsClearly(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-wrk", filepath.Join(t.TempDir(), "wrk")}, &out, &errOut)
	require.Equal(t, 1, code)
	require.Contains(t, errOut.String(), "apt-get install -y wrk")
	require.Empty(t, out.String())
}

// TestRunMeasuresBothPaths is a smoke run (1 s per pass): it checks the
// command's output shape and that the stack answers, not the figures.
func TestRunMeasuresBothPaths(t *testing.T) {
	if _, err := lookWrk(""); err != nil {
		realtest.Missing(t, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"-duration", "1s", "-runs", "1", "-warmup", "0", "-connections", "4", "-threads", "1"}, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	for _, name := range []string{"asset", "page"} {
		re := regexp.MustCompile(`(?m)^` + name + `: proxy [0-9]+ req/s, direct [0-9]+ req/s, ratio [0-9.]+ \(target >= 0\.[0-9]+\)`)
		require.Regexp(t, re, out.String())
	}
	// The page path goes through the session probe; its Valid verdict is
	// cached, so far fewer probes than page loads reach the instance.
	m := regexp.MustCompile(`page: ([0-9]+) requests through the proxy sent ([0-9]+) session probes`).FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	loads, _ := strconv.Atoi(m[1])
	probes, _ := strconv.Atoi(m[2])
	require.Positive(t, probes, "page loads with a cookie are probed")
	require.Less(t, probes*10, loads, "a Valid verdict is reused for the same cookie")
	require.Contains(t, out.String(), "fast path handed 0 connection(s) to net/http's server", "the load ran on the fast path")
}

// TestMain lets the test binary stand in for the command when the stack
// re-executes itself as the upstream child.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == upstreamChildArg {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestRunBaselines measures the plain ReverseProxy, the Handler on net/http
// alone and the dispatch with plain net.Conn I/O with the same paths.
func TestRunBaselines(t *testing.T) {
	if _, err := lookWrk(""); err != nil {
		realtest.Missing(t, "%v", err)
	}
	for flag, title := range map[string]string{"-bare": "a bare httputil.ReverseProxy", "-net-http": "net/http's server alone",
		"-plain-io": "sockets read and written through net.Conn"} {
		t.Run(flag, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			code := run(ctx, []string{flag, "-only", "asset", "-duration", "1s", "-runs", "1", "-warmup", "0", "-connections", "4", "-threads", "1"}, &out, &errOut)
			require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
			require.Contains(t, out.String(), title)
			require.Regexp(t, `(?m)^asset: proxy [0-9]+ req/s`, out.String())
			require.NotContains(t, out.String(), "page:")
		})
	}
}
