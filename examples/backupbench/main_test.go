package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/t3fleet/t3fleet/internal/realtest"
)

// TestMain lets the test binary be the writer child the snapshot benchmark
// starts (it re-executes itself with -writer-child).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-writer-child" {
		ctx := context.Background()
		os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestRunRejectsBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"-nope"}, &out, &errOut))
	require.NotEmpty(t, errOut.String())
}

func TestRunWithoutTheCLIFailsClearly(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 1, run(context.Background(), []string{"-sqlite3", "/nonexistent/sqlite3"}, &out, &errOut))
	require.Contains(t, errOut.String(), "the sqlite3 CLI is the baseline and is missing")
}

// A small run of both benchmarks: it checks that each prints its figures
// and the baselines beside them, not the figures themselves.
func TestRunSmoke(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		realtest.Missing(t, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"-dir", t.TempDir(), "-size-mb", "2", "-rounds", "1", "-rate", "50",
		"-threads", "2000", "-verdicts", "3"}, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	require.Contains(t, out.String(), "backupbench: load average")
	for _, line := range []string{`sqlite3 CLI VACUUM INTO +[0-9.]+ MB/s +ratio to CLI 1\.00x`,
		`Store\.Backup \(backup-api\) +[0-9.]+ MB/s +ratio to CLI [0-9.]+x`,
		`no snapshot running +p99 .* \([1-9][0-9]* inserts\)`, // the writer child ran
		`idle verdict on 2000 threads, 3 runs: median`,
		`sqlite3 CLI, the same scan: median`} {
		require.Regexp(t, line, out.String())
	}
}
