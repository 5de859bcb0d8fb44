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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

// opsFixture is a host: a home root with users' t3 state, a user map, a
// backup destination and a fake unit manager recording its calls.
type opsFixture struct {
	env    map[string]string
	home   string
	active map[string]bool
	calls  []string
	units  *rollouttest.UnitManager
}

func newOpsFixture(t *testing.T) *opsFixture {
	t.Helper()
	dir := t.TempDir()
	f := &opsFixture{
		home:   filepath.Join(dir, "home"),
		active: map[string]bool{},
		env: map[string]string{
			"T3_USER_MAP":    filepath.Join(dir, "ttyd-user-map"),
			"T3_HOME_ROOT":   filepath.Join(dir, "home"),
			"T3_BACKUP_DEST": filepath.Join(dir, "backups"),
			"T3_STATE_DIR":   filepath.Join(dir, "state"),
		},
	}
	require.NoError(t, os.WriteFile(f.env["T3_USER_MAP"], []byte("# sso=os\nalice.a=alice\nbob=bob\n"), 0o644))
	f.units = &rollouttest.UnitManager{
		StatusFunc: func(_ context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
			f.calls = append(f.calls, "status "+u.Name)
			if f.active[u.User] {
				return rollout.UnitStatus{Active: true, State: "active", MainPID: os.Getpid()}, nil
			}
			return rollout.UnitStatus{State: "inactive"}, nil
		},
		StopFunc: func(_ context.Context, u rollout.Unit) error {
			f.calls = append(f.calls, "stop "+u.Name)
			f.active[u.User] = false
			return nil
		},
		StartFunc: func(_ context.Context, u rollout.Unit) error {
			f.calls = append(f.calls, "start "+u.Name)
			f.active[u.User] = true
			return nil
		},
	}
	return f
}

func (f *opsFixture) base(user string) string { return filepath.Join(f.home, user, ".t3") }

func (f *opsFixture) seed(t *testing.T, user string, era t3test.Era, opts t3test.SeedOptions) {
	t.Helper()
	require.NoError(t, t3test.SeedState(f.base(user), era, opts))
}

func (f *opsFixture) cli() opsCLI {
	return opsCLI{
		Getenv: func(k string) string { return f.env[k] },
		Units: func(_ context.Context, uc unitChoice) (rollout.UnitManager, func(), error) {
			if uc.Kind == unitsNone {
				return nil, func() {}, nil
			}
			return f.units, func() {}, nil
		},
	}
}

func (f *opsFixture) call(cmd string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	c := f.cli()
	ctx := context.Background()
	code := map[string]func(context.Context, []string, *bytes.Buffer, *bytes.Buffer) int{
		"backup":  func(ctx context.Context, a []string, o, e *bytes.Buffer) int { return c.backup(ctx, a, o, e) },
		"backups": func(ctx context.Context, a []string, o, e *bytes.Buffer) int { return c.backups(ctx, a, o, e) },
		"restore": func(ctx context.Context, a []string, o, e *bytes.Buffer) int { return c.restore(ctx, a, o, e) },
		"idle":    func(ctx context.Context, a []string, o, e *bytes.Buffer) int { return c.idle(ctx, a, o, e) },
	}[cmd](ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func marker(t *testing.T, path string) string {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	require.NoError(t, err)
	defer c.Close()
	v := ""
	require.NoError(t, sqlitex.ExecuteTransient(c, `SELECT title FROM projection_threads ORDER BY thread_id LIMIT 1`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { v = s.ColumnText(0); return nil }}))
	return v
}

func setMarker(t *testing.T, path, v string) {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, sqlitex.ExecuteTransient(c, `UPDATE projection_threads SET title = ?`, &sqlitex.ExecOptions{Args: []any{v}}))
}

func TestBackupAllUsers(t *testing.T) {
	f := newOpsFixture(t)
	f.seed(t, "alice", t3test.EraC, t3test.SeedOptions{})
	// bob never started: no database, skipped.
	code, out, errs := f.call("backup")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "alice: "+filepath.Join(f.env["T3_BACKUP_DEST"], "alice", "state-"))
	assert.Contains(t, out, "schema 32")
	assert.Contains(t, out, "bob: skipped, no state database")

	// A broken database fails its user, after the others were tried.
	require.NoError(t, os.MkdirAll(filepath.Join(f.base("bob"), "userdata"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(f.base("bob"), "userdata", "state.sqlite"), []byte(strings.Repeat("junk", 1000)), 0o644))
	code, out, errs = f.call("backup", "--label", "manual")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "bob: FAILED")
	assert.Contains(t, out, "alice: "+filepath.Join(f.env["T3_BACKUP_DEST"], "alice", "state-manual-"))
	assert.Contains(t, errs, "1 of 2 user(s) failed")
}

func TestBackupKeepsN(t *testing.T) {
	f := newOpsFixture(t)
	f.seed(t, "alice", t3test.EraA, t3test.SeedOptions{})
	f.env["T3_BACKUP_KEEP"] = "2"
	now := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	c := f.cli()
	c.StoreOptions.Now = func() time.Time { now = now.Add(time.Hour); return now }
	for i := 0; i < 4; i++ {
		var out, errb bytes.Buffer
		require.Equal(t, 0, c.backup(context.Background(), []string{"--user", "alice.a"}, &out, &errb), errb.String())
	}
	snaps, _ := filepath.Glob(filepath.Join(f.env["T3_BACKUP_DEST"], "alice", "*.sqlite"))
	assert.Len(t, snaps, 2)
}

func TestBackupsList(t *testing.T) {
	f := newOpsFixture(t)
	f.seed(t, "alice", t3test.EraE, t3test.SeedOptions{})
	require.Equal(t, 0, first(f.call("backup", "--user", "alice", "--label", "prebump-0.0.46", "--t3-version", "0.0.45")))
	// An old snapshot of the seed's scripts, no metadata.
	require.NoError(t, os.WriteFile(filepath.Join(f.env["T3_BACKUP_DEST"], "alice", "state-20250101-000000.sqlite"), []byte("x"), 0o600))
	code, out, _ := f.call("backups", "--user", "alice")
	require.Equal(t, 0, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	assert.Regexp(t, `^USER\s+LABEL\s+TIME\s+SIZE\s+SCHEMA\s+VERIFIED`, lines[0])
	assert.Regexp(t, `^alice\s+prebump-0.0.46\s+\S+\s+[\d.]+ KiB\s+34\s+yes\s+0.0.45\s+/`, lines[1])
	assert.Regexp(t, `^alice\s+daily\s+2025-01-01T00:00:00Z\s+1 B\s+\?\s+no`, lines[2])
}

func first(code int, _, _ string) int { return code }

func TestRestoreCommand(t *testing.T) {
	setup := func(t *testing.T) (*opsFixture, string) {
		f := newOpsFixture(t)
		f.seed(t, "alice", t3test.EraD, t3test.SeedOptions{})
		live := filepath.Join(f.base("alice"), "userdata", "state.sqlite")
		setMarker(t, live, "before")
		require.Equal(t, 0, first(f.call("backup", "--user", "alice", "--label", "prebump-0.0.46")))
		setMarker(t, live, "after")
		return f, live
	}
	t.Run("refuses while active", func(t *testing.T) {
		f, live := setup(t)
		f.active["alice"] = true
		code, _, errs := f.call("restore", "--user", "alice", "--latest-prebump")
		assert.Equal(t, 1, code)
		assert.Contains(t, errs, "t3-serve@alice.service is active: stop it first, or pass --stop")
		assert.Equal(t, "after", marker(t, live))
	})
	// A unit on its way up or down (a crash loop's auto-restart is
	// "activating") has a process that may open the database mid-restore.
	t.Run("refuses while activating", func(t *testing.T) {
		f, live := setup(t)
		f.units.StatusFunc = func(_ context.Context, u rollout.Unit) (rollout.UnitStatus, error) {
			return rollout.UnitStatus{State: "activating", MainPID: os.Getpid()}, nil
		}
		code, _, errs := f.call("restore", "--user", "alice", "--latest-prebump")
		assert.Equal(t, 1, code)
		assert.Contains(t, errs, "t3-serve@alice.service is activating: stop it first, or pass --stop")
		assert.Equal(t, "after", marker(t, live))
	})
	t.Run("stop, restore, start", func(t *testing.T) {
		f, live := setup(t)
		f.active["alice"] = true
		code, out, errs := f.call("restore", "--user", "alice", "--latest-prebump", "--stop")
		require.Equal(t, 0, code, errs)
		assert.Equal(t, "before", marker(t, live))
		assert.Equal(t, []string{"status t3-serve@alice.service", "stop t3-serve@alice.service", "start t3-serve@alice.service"}, f.calls)
		assert.Contains(t, out, "alice: restored ")
		assert.NotContains(t, out, "stays stopped")
	})
	t.Run("gives up on a lock a run holds, touching nothing, and goes ahead once it is released", func(t *testing.T) {
		f, live := setup(t)
		f.active["alice"] = true
		require.NoError(t, os.MkdirAll(f.env["T3_STATE_DIR"], 0o755))
		held, err := rollout.AcquireLock(context.Background(), filepath.Join(f.env["T3_STATE_DIR"], rollout.LockFile), "watchdog", 0)
		require.NoError(t, err)
		code, _, errs := f.call("restore", "--user", "alice", "--latest-prebump", "--stop", "--lock-wait", "200ms")
		assert.Equal(t, 1, code)
		assert.Contains(t, errs, "watchdog", "the holder is named")
		assert.Equal(t, "after", marker(t, live))
		assert.Empty(t, f.calls, "no unit was touched")
		held.Release()

		code, _, errs = f.call("restore", "--user", "alice", "--latest-prebump", "--stop")
		require.Equal(t, 0, code, errs)
		assert.Equal(t, "before", marker(t, live))
	})
	t.Run("inactive needs no stop and is not started", func(t *testing.T) {
		f, live := setup(t)
		snaps, _ := filepath.Glob(filepath.Join(f.env["T3_BACKUP_DEST"], "alice", "*.sqlite"))
		require.Len(t, snaps, 1)
		code, out, errs := f.call("restore", "--user", "alice", "--snapshot", snaps[0])
		require.Equal(t, 0, code, errs)
		assert.Equal(t, "before", marker(t, live))
		assert.Equal(t, []string{"status t3-serve@alice.service"}, f.calls)
		// After a ROLLBACK FAILED the unit is down: the restore says it
		// stays so, and the command that brings the user back.
		assert.Contains(t, out, "t3-serve@alice.service was not running and stays stopped: start it with `systemctl start t3-serve@alice.service`")
	})
	t.Run("a failed restore starts the old database again", func(t *testing.T) {
		f, live := setup(t)
		f.active["alice"] = true
		bad := filepath.Join(t.TempDir(), "state-20250101-000000.sqlite")
		require.NoError(t, os.WriteFile(bad, []byte(strings.Repeat("junk", 2000)), 0o600))
		code, _, errs := f.call("restore", "--user", "alice", "--snapshot", bad, "--stop")
		assert.Equal(t, 1, code)
		assert.Contains(t, errs, "integrity check failed")
		assert.Equal(t, "after", marker(t, live))
		assert.True(t, f.active["alice"], "started again")
	})
	t.Run("usage", func(t *testing.T) {
		f, _ := setup(t)
		for _, args := range [][]string{
			{"--latest-prebump"},
			{"--user", "alice"},
			{"--user", "alice", "--latest-prebump", "--snapshot", "x"},
		} {
			code, _, _ := f.call("restore", args...)
			assert.Equal(t, 2, code, args)
		}
		code, _, errs := f.call("restore", "--user", "alice", "--latest-prebump", "--stop", "-units", "none")
		assert.Equal(t, 1, code)
		assert.Contains(t, errs, "--stop needs a unit manager")
		code, _, _ = f.call("restore", "--user", "../root", "--latest-prebump")
		assert.Equal(t, 1, code)
	})
}

func TestIdleCommand(t *testing.T) {
	f := newOpsFixture(t)
	long := time.Now().Add(-2 * time.Hour)
	f.seed(t, "alice", t3test.EraC, t3test.SeedOptions{Now: long})
	f.seed(t, "bob", t3test.EraE, t3test.SeedOptions{Now: long, ActiveTurns: 1})
	f.active["alice"], f.active["bob"] = true, true

	code, out, errs := f.call("idle")
	assert.Equal(t, 1, code, errs)
	// Seeded two hours back; a slow run (-race) may cross a second or two.
	assert.Regexp(t, `alice: idle=true active=0 quiet=2h0m[0-5]s`, out)
	assert.Contains(t, out, "bob: idle=false active=1")

	code, out, _ = f.call("idle", "--user", "alice", "-units", "none")
	assert.Equal(t, 0, code, out)
	code, out, _ = f.call("idle", "--user", "alice", "--quiet", "3h", "-units", "none")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "under the quiet threshold 3h0m0s")

	f.active["alice"] = false
	code, out, _ = f.call("idle", "--user", "alice")
	assert.Equal(t, 1, code, "an inactive unit has no process tree to judge: fail closed")
	assert.Contains(t, out, "inactive")
}

func TestLoadConfig(t *testing.T) {
	cases := []struct {
		env  map[string]string
		ok   bool
		want func(c config) bool
	}{
		{map[string]string{}, true, func(c config) bool {
			return c.UserMap == "/etc/ttyd-user-map" && c.HomeRoot == "/home" && c.BackupDest == "/var/backups/t3-state" &&
				c.BackupKeep == 6 && c.BackupTimeout == 15*time.Minute && c.MigrateQuiet == 900*time.Second &&
				c.StateDir == "/var/lib/t3-autoupdate"
		}},
		{map[string]string{"T3_BACKUP_TIMEOUT": "600", "T3_MIGRATE_QUIET_SECONDS": "60", "T3_BACKUP_KEEP": "3"}, true, func(c config) bool {
			return c.BackupTimeout == 10*time.Minute && c.MigrateQuiet == time.Minute && c.BackupKeep == 3
		}},
		{map[string]string{"T3_BACKUP_TIMEOUT": "2m"}, true, func(c config) bool { return c.BackupTimeout == 2*time.Minute }},
		{map[string]string{"T3_BACKUP_KEEP": "0"}, false, nil},
		{map[string]string{"T3_BACKUP_KEEP": "many"}, false, nil},
		{map[string]string{"T3_BACKUP_TIMEOUT": "-5"}, false, nil},
		{map[string]string{"T3_MIGRATE_QUIET_SECONDS": "soon"}, false, nil},
	}
	for _, c := range cases {
		got, err := loadConfig(func(k string) string { return c.env[k] })
		if !c.ok {
			assert.Error(t, err, c.env)
			continue
		}
		require.NoError(t, err, c.env)
		assert.True(t, c.want(got), "%v -> %+v", c.env, got)
	}
}

func TestRunDispatchesCommands(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, 2, run(context.Background(), nil, &out, &errb))
	for _, name := range []string{"run", "plan", "status", "freeze", "unfreeze", "backup", "backups", "restore", "idle"} {
		assert.Contains(t, errb.String(), "  "+name+" ")
	}
	errb.Reset()
	assert.Equal(t, 2, run(context.Background(), []string{"nope"}, &out, &errb))
	assert.Contains(t, errb.String(), `unknown command "nope"`)
	assert.Equal(t, 2, run(context.Background(), []string{"backup", "--nope"}, &out, &errb))
	assert.Equal(t, 2, run(context.Background(), []string{"backups", "stray"}, &out, &errb))
	// Asking a command for its usage is not an error, as `updater -h` is not.
	for _, name := range []string{"backup", "backups", "restore", "idle", "watchdog", "migrate-idle", "plan"} {
		errb.Reset()
		assert.Equal(t, 0, run(context.Background(), []string{name, "-h"}, &out, &errb), name)
		assert.Contains(t, errb.String(), "Usage of updater "+name, name)
	}
}

// --user takes an SSO name of the map before an OS name: "bob" is a valid
// OS name, but SSO bob's instance runs as t3bob.
func TestUserFlagPrefersTheMap(t *testing.T) {
	f := newOpsFixture(t)
	require.NoError(t, os.WriteFile(f.env["T3_USER_MAP"], []byte("bob=t3bob\nrobert=rob\nrob2=bob2\nx=bob3\nbob3=other\n"), 0o644))
	c, err := loadConfig(func(k string) string { return f.env[k] })
	require.NoError(t, err)
	for in, want := range map[string]string{"bob": "t3bob", "t3bob": "t3bob", "robert": "rob", "rob": "rob"} {
		got, err := f.cli().users(c, in, io.Discard)
		require.NoError(t, err, in)
		require.Equal(t, []string{want}, got, in)
	}
	_, err = f.cli().users(c, "bob3", io.Discard)
	require.ErrorContains(t, err, "ambiguous")
}
