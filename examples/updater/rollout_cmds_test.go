package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

const (
	tv1 = "0.0.28-nightly.20260616.571"
	tv2 = "0.0.28-nightly.20260617.580"
)

type cliFixture struct {
	t    testing.TB
	sim  *rollouttest.Sim
	env  map[string]string
	last engineConfig
}

func newCLIFixture(t *testing.T) *cliFixture {
	t.Helper()
	dir := t.TempDir()
	sim, err := rollouttest.NewSim(dir, tv1, "alice", "bob")
	require.NoError(t, err)
	sim.Publish("nightly", tv2, time.Now().Add(-24*time.Hour))
	return &cliFixture{t: t, sim: sim, env: map[string]string{
		"T3_STATE_DIR":   filepath.Join(dir, "state"),
		"T3_FREEZE_FILE": filepath.Join(dir, "freeze"),
		"USER":           "ops",
	}}
}

func (f *cliFixture) cli() rolloutCLI {
	return rolloutCLI{
		Getenv: func(k string) string { return f.env[k] },
		Wire: func(_ context.Context, c engineConfig) (*rollout.Engine, func(), error) {
			f.last = c
			e := f.sim.Engine(c.Options)
			return e, func() {}, nil
		},
	}
}

// rolloutCommand is the rolloutCLI method of a command, for the tests that
// run one with an environment and adapters of their own.
func rolloutCommand(t testing.TB, name string) func(rolloutCLI, context.Context, []string, io.Writer, io.Writer) int {
	t.Helper()
	cmd, ok := map[string]func(rolloutCLI, context.Context, []string, io.Writer, io.Writer) int{
		"run": rolloutCLI.run, "plan": rolloutCLI.plan, "status": rolloutCLI.status,
		"freeze": rolloutCLI.freeze, "unfreeze": rolloutCLI.unfreeze,
		"migrate-idle": rolloutCLI.migrateIdle, "watchdog": rolloutCLI.watchdog,
	}[name]
	if !ok {
		t.Fatalf("no rollout command %q", name)
	}
	return cmd
}

func call(f *cliFixture, cmd string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := rolloutCommand(f.t, cmd)(f.cli(), context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRolloutCommands(t *testing.T) {
	cases := []struct {
		name     string
		setup    func(*cliFixture)
		cmd      string
		args     []string
		wantCode int
		wantOut  []string
	}{
		{"run rolls out", nil, "run", nil, 0, []string{"done: " + tv1 + " -> " + tv2 + " restarted=2 deferred=0", `msg=done`}},
		{"run defers busy", func(f *cliFixture) { f.sim.SetBusy("bob", true) }, "run", nil, 0, []string{"restarted=1 deferred=1", "msg=deferred"}},
		{"dry run prints the plan", func(f *cliFixture) { f.env["T3_DRY_RUN"] = "1" }, "run", nil, 0, []string{"would roll out", "1. alice"}},
		{"pin", func(f *cliFixture) { f.env["T3_PIN"] = "0.0.29-nightly.20260620.600" }, "run", nil, 0, []string{"-> 0.0.29-nightly.20260620.600"}},
		{"backward tag refused", func(f *cliFixture) { f.sim.Publish("nightly", "0.0.27-nightly.20260601.1", time.Now()) }, "run", nil, 0, []string{"refused: ", "not newer"}},
		{"min-age refused", nil, "run", []string{"--min-age", "48h"}, 0, []string{"refused: ", "min-age 48h"}},
		{"health check failed", func(f *cliFixture) { f.sim.FailHealth(tv2, "migration failed") }, "run", nil, 1, []string{"HEALTH-CHECK FAILED (migration failed)"}},
		{"canary failure", func(f *cliFixture) { f.sim.FailCanary(tv2, "alice") }, "run", nil, 1, []string{"rolled back " + tv2, `level=ERROR msg="rolled back`}},
		{"frozen run", func(f *cliFixture) { call(f, "freeze", "--reason", "hold") }, "run", nil, 0, []string{"FROZEN: hold by ops"}},
		{"freeze", nil, "freeze", []string{"--reason", "incident 12", "--for", "48h"}, 0, []string{"FROZEN: incident 12 by ops at ", " until "}},
		{"freeze needs a reason", nil, "freeze", nil, 2, nil},
		{"freeze for a negative time", nil, "freeze", []string{"--reason", "x", "--for", "-1h"}, 2, nil},
		{"a command's -h is not an error", nil, "run", []string{"-h"}, 0, nil},
		{"a bad flag is", nil, "run", []string{"--no-such-flag"}, 2, nil},
		{"backups one by one", nil, "run", []string{"--backup-concurrency", "1"}, 0, []string{"done"}},
		{"no backups at all is no concurrency", nil, "run", []string{"--backup-concurrency", "0"}, 2, nil},
		{"unfreeze", func(f *cliFixture) { call(f, "freeze", "--reason", "hold") }, "unfreeze", nil, 0, []string{"unfrozen (was: hold by ops"}},
		{"unfreeze when not frozen", nil, "unfreeze", nil, 0, []string{"not frozen"}},
		{"status", func(f *cliFixture) { call(f, "run") }, "status", nil, 0, []string{"current " + tv2 + ", last-good " + tv2, "alice t3-serve@alice.service active version=" + tv2}},
		{"status beside a malformed journal", func(f *cliFixture) {
			call(f, "freeze", "--reason", "hold")
			require.NoError(f.t, os.MkdirAll(f.env["T3_STATE_DIR"], 0o755))
			require.NoError(f.t, os.WriteFile(filepath.Join(f.env["T3_STATE_DIR"], rollout.JournalFile), []byte("{not json"), 0o644))
		}, "status", nil, 1, []string{"FROZEN: hold by ops", "alice t3-serve@alice.service active", "UNREADABLE: journal "}},
		{"plan", nil, "plan", []string{"--order", "bob,alice"}, 0, []string{"1. bob", "2. alice"}},
		{"bad flag", nil, "run", []string{"--nope"}, 2, nil},
		{"bad installer", nil, "run", []string{"--installer", "yum"}, 2, nil},
		{"bad smoke port", func(f *cliFixture) { f.env["T3_SMOKE_PORT"] = "http" }, "run", nil, 2, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newCLIFixture(t)
			if c.setup != nil {
				c.setup(f)
			}
			code, out, errOut := call(f, c.cmd, c.args...)
			require.Equal(t, c.wantCode, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			for _, w := range c.wantOut {
				require.Contains(t, out, w)
			}
		})
	}
}

func TestRolloutCommandsReadEnvAndFlags(t *testing.T) {
	f := newCLIFixture(t)
	f.env["T3_TRACK"] = "latest"
	f.env["T3_TMPDIR"] = "/scratch"
	f.env["T3_SMOKE_PORT"] = "3999"
	f.env["T3_DISPATCH"] = "http://127.0.0.1:8080"
	f.env["T3_BACKUP_DEST"] = "/b"
	f.sim.Publish("latest", "0.0.28", time.Now().Add(-time.Hour))
	code, out, _ := call(f, "run", "--allow-missing-backup", "--skip-path-check", "--seed-user", "bob", "--order", "bob,alice", "--operator", "alice", "--installer", "global", "--lock-wait", "1s")
	require.Equal(t, 0, code, out)
	o := f.last.Options
	require.Equal(t, "latest", o.Track)
	require.Equal(t, "/scratch", o.TmpDir)
	require.True(t, o.AllowMissingBackup)
	require.True(t, o.SkipPathCheck)
	require.Equal(t, "bob", o.SeedUser)
	require.Equal(t, []string{"bob", "alice"}, o.Order)
	require.Equal(t, "alice", o.OperatorUser)
	require.Equal(t, time.Second, o.LockWait)
	require.Equal(t, 3999, f.last.SmokePort)
	require.Equal(t, "http://127.0.0.1:8080", f.last.Dispatch)
	require.Equal(t, "/b", f.last.BackupDest)
	require.Equal(t, installerGlobal, f.last.Installer)
	require.True(t, strings.Contains(out, "-> 0.0.28 "), out)
}

func TestDryRunChangesNothing(t *testing.T) {
	f := newCLIFixture(t)
	f.env["T3_DRY_RUN"] = "1"
	code, out, _ := call(f, "run")
	require.Equal(t, 0, code, out)
	require.Empty(t, f.sim.Calls())
	require.Equal(t, tv1, f.sim.Current())
}

func TestUserMapLocator(t *testing.T) {
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "ttyd-user-map")
	require.NoError(t, os.WriteFile(mapPath, []byte("# sso=os\nemil.barzin=emil\nana=ana\n"), 0o644))
	cases := []struct {
		path, user, wantSSO string
	}{
		{mapPath, "emil", "emil.barzin"},
		{mapPath, "ana", "ana"},
		{mapPath, "zoe", "zoe"},
		{filepath.Join(dir, "missing"), "emil", "emil"},
		{"", "emil", "emil"},
	}
	for _, c := range cases {
		l := userMapLocator{home: rollout.HomeLocator{Root: "/srv/home"}, path: c.path}
		in, err := l.Locate(context.Background(), rollout.Unit{User: c.user})
		require.NoError(t, err)
		require.Equal(t, c.wantSSO, in.User, "%s in %s", c.user, c.path)
		require.Equal(t, c.user, in.OSUser)
		require.Equal(t, filepath.Join("/srv/home", c.user, ".t3"), in.StateDir)
	}
	_, err := userMapLocator{path: mapPath}.Locate(context.Background(), rollout.Unit{User: "../x"})
	require.Error(t, err)
}
