package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/t3fleet/t3fleet/rollout"
)

// Every command that wires the engine reads the seed's environment the way
// the operations commands do: a flag's default must not hide it.
func TestEngineCommandsReadTheEnvironment(t *testing.T) {
	for _, cmd := range []string{"run", "plan", "status", "migrate-idle", "watchdog"} {
		t.Run(cmd, func(t *testing.T) {
			f := newCLIFixture(t)
			f.env["T3_HOME_ROOT"] = "/srv/homes"
			f.env["T3_BACKUP_TIMEOUT"] = "3600"
			f.env["T3_BACKUP_KEEP"] = "9"
			f.env["T3_WD_STATE_DIR"] = t.TempDir()
			f.env["T3_ENV_DIR"] = t.TempDir()
			var args []string
			if cmd == "migrate-idle" {
				args = []string{"--window", "always"}
			}
			rolloutCommand(t, cmd)(f.cli(), context.Background(), args, io.Discard, io.Discard)
			require.Equal(t, "/srv/homes", f.last.HomeRoot)
			require.Equal(t, time.Hour, f.last.BackupTimeout)
			require.Equal(t, 9, f.last.Options.BackupKeep)
		})
	}
}

// A configuration the updater cannot use stops it with exit 2 and says
// why on stderr; a pin or a dry-run switch it cannot read is no exception
// (a malformed pin used to read as "refused", exit 0, and T3_DRY_RUN=true
// as a real run).
func TestEngineConfigErrorsAreSaid(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"pin with a trailing space", map[string]string{"T3_PIN": "0.0.29 "}, nil, "T3_PIN"},
		{"pin that is no version", map[string]string{"T3_PIN": "latest"}, nil, "T3_PIN"},
		{"dry run it cannot read", map[string]string{"T3_DRY_RUN": "maybe"}, nil, "T3_DRY_RUN"},
		{"bad smoke port", map[string]string{"T3_SMOKE_PORT": "http"}, nil, "T3_SMOKE_PORT"},
		{"bad quiet seconds", map[string]string{"T3_MIGRATE_QUIET_SECONDS": "soon"}, nil, "T3_MIGRATE_QUIET_SECONDS"},
		{"unknown installer", nil, []string{"--installer", "globl"}, "--installer"},
		{"stray argument", nil, []string{"now"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCLIFixture(t)
			for k, v := range tc.env {
				f.env[k] = v
			}
			code, out, errs := call(f, "run", tc.args...)
			require.Equal(t, 2, code, out)
			require.Contains(t, errs, tc.want)
			require.Empty(t, f.sim.Calls(), "nothing ran")
		})
	}
}

func TestDryRunValues(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "false": false, "no": false, "off": false,
		"1": true, "true": true, "TRUE": true, "yes": true, "on": true} {
		got, err := parseFlagValue(v)
		require.NoError(t, err, v)
		require.Equal(t, want, got, v)
	}
	for _, v := range []string{"2", "maybe", "y"} {
		_, err := parseFlagValue(v)
		require.Error(t, err, v)
	}
	f := newCLIFixture(t)
	f.env["T3_DRY_RUN"] = "true"
	code, out, errs := call(f, "run")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "would roll out")
	require.Empty(t, f.sim.Calls(), "a dry run changes nothing")
}

// One bad line of the user map stops only what it may concern: the users
// of its good lines are placed; one it lacks is an error of its own.
func TestUserMapLocatorWithABadLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ttyd-user-map")
	require.NoError(t, os.WriteFile(path, []byte("ana.a=ana\nbob.b=bob # laptop\n"), 0o644))
	l := userMapLocator{home: rollout.HomeLocator{Root: "/home"}, path: path}
	in, err := l.Locate(context.Background(), rollout.Unit{User: "ana"})
	require.NoError(t, err)
	require.Equal(t, "ana.a", in.User)
	_, err = l.Locate(context.Background(), rollout.Unit{User: "bob"})
	require.ErrorContains(t, err, "not among the good lines")
	require.ErrorContains(t, err, "laptop")
}
