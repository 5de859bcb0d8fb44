package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/t3fleet/t3fleet/rollout"
)

// A value the updater cannot read, from a flag or the environment, is a
// usage error: exit 2 before anything is wired, as for an unknown flag,
// whichever command reads it.
func TestUsageErrorsExit2(t *testing.T) {
	cases := []struct {
		name string
		cmd  string
		env  map[string]string
		args []string
	}{
		{"migrate-idle: a bad --window", "migrate-idle", nil, []string{"--window", "25:00-03:00"}},
		{"migrate-idle: a bad T3_MIGRATE_WINDOW", "migrate-idle", map[string]string{"T3_MIGRATE_WINDOW": "nightly"}, nil},
		{"watchdog: a bad T3_WD_GRACE", "watchdog", map[string]string{"T3_WD_GRACE": "soon"}, nil},
		{"watchdog: a bad T3_WD_FAILURES", "watchdog", map[string]string{"T3_WD_FAILURES": "0"}, nil},
		{"run: a bad T3_PIN", "run", map[string]string{"T3_PIN": "0.0.28 "}, nil},
		{"run: --backup-concurrency 0", "run", nil, []string{"--backup-concurrency", "0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rolloutCLI{
				Getenv: func(k string) string { return c.env[k] },
				Wire: func(context.Context, engineConfig) (*rollout.Engine, func(), error) {
					return nil, nil, errors.New("wired: the usage error was not caught")
				},
			}
			cmd := rolloutCommand(t, c.cmd)
			var stderr strings.Builder
			assert.Equal(t, 2, cmd(r, context.Background(), c.args, io.Discard, &stderr), stderr.String())
			assert.NotContains(t, stderr.String(), "wired")
			assert.Contains(t, stderr.String(), "updater "+c.cmd+": ")
		})
	}
	t.Run("backup: a bad --label", func(t *testing.T) {
		f := newOpsFixture(t)
		code, _, stderr := f.call("backup", "--label", "../etc")
		assert.Equal(t, 2, code, stderr)
	})
	t.Run("backup: a bad T3_BACKUP_KEEP", func(t *testing.T) {
		f := newOpsFixture(t)
		f.env["T3_BACKUP_KEEP"] = "0"
		code, _, stderr := f.call("backup")
		assert.Equal(t, 2, code, stderr)
	})
}

// The command list of `updater -h` is a table: every summary starts in the
// same column, the longest name (migrate-idle) included.
func TestUsageSummariesAligned(t *testing.T) {
	var out strings.Builder
	usage(&out, commands())
	col := -1
	for _, c := range commands() {
		var line string
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, "  "+c.name+" ") {
				line = l
			}
		}
		i := strings.Index(line, c.summary)
		if !assert.Positive(t, i, "no line for %s in:\n%s", c.name, out.String()) {
			continue
		}
		if col < 0 {
			col = i
		}
		assert.Equal(t, col, i, "summary of %s starts in another column:\n%s", c.name, out.String())
	}
}
