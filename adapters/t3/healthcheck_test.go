package t3_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/rollout"
)

// seedSnapshot makes a populated database of era and returns its path, the
// way a prebump snapshot would be handed to the health check.
func seedSnapshot(t *testing.T, era t3test.Era) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, t3test.SeedState(dir, era, t3test.SeedOptions{Threads: 3, BulkRows: 50}))
	return t3test.LiveDB(dir)
}

// stageBuild writes <prefix>/versions/<v>/t3 running the fake CLI as v.
func stageBuild(t *testing.T, prefix, version string, f t3test.Faults) rollout.Build {
	t.Helper()
	dir := filepath.Join(prefix, "versions", version)
	bin, err := t3test.WriteBuild(dir, t3test.BuildCLI(t), version, f)
	require.NoError(t, err)
	return rollout.Build{Version: version, Dir: dir, Bin: bin}
}

func TestHealthCheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		seed     t3test.Era
		version  string
		faults   t3test.Faults
		pass     bool
		endpoint string
		schema   int
		reason   string
	}{
		{"B build on B data", t3test.EraB, "0.0.25", t3test.Faults{}, true, "/api/auth/browser-session", 30, ""},
		{"A build: bootstrap after the 404", t3test.EraA, "0.0.24", t3test.Faults{}, true, "/api/auth/bootstrap", 30, ""},
		{"C build migrates B data", t3test.EraB, "0.0.28", t3test.Faults{}, true, "/api/auth/browser-session", 32, ""},
		{"D build on C data", t3test.EraC, "0.0.36", t3test.Faults{}, true, "/api/auth/browser-session", 32, ""},
		{"E build moves D data to statev2", t3test.EraD, "0.0.46-nightly.20260901.900", t3test.Faults{}, true, "/api/auth/browser-session", 34, ""},
		{"slow start", t3test.EraC, "0.0.30", t3test.Faults{SlowStart: 700 * time.Millisecond}, true, "/api/auth/browser-session", 32, ""},
		{"migration throws", t3test.EraB, "0.0.28", t3test.Faults{MigrationFails: true}, false, "", 0, `31_AuthAuthorizationScopes`},
		{"pairing broken while / is 200", t3test.EraC, "0.0.30", t3test.Faults{PairingBroken: true}, false, "", 0, "returned 500"},
		{"exchange 200 without Set-Cookie", t3test.EraC, "0.0.30", t3test.Faults{NoSetCookie: true}, false, "", 0, "without a session cookie"},
		{"old build on a forward-migrated DB", t3test.EraD, "0.0.27", t3test.Faults{}, false, "", 0, "no column named role"},
		{"wedged listener", t3test.EraC, "0.0.30", t3test.Faults{Wedged: true}, false, "", 0, "not ready within"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t3test.SharedDir(t)
			b := stageBuild(t, t3test.SharedDir(t), tc.version, tc.faults)
			seed := seedSnapshot(t, tc.seed)
			seedBefore, err := os.ReadFile(seed)
			require.NoError(t, err)
			// Generous bounds (a loaded CI machine), but short ones for the
			// listener that never answers, whose verdict is the timeout.
			opts := t3.HealthCheckerOptions{TempDir: tmp, ReadyTimeout: 30 * time.Second}
			if tc.faults.Wedged {
				opts.ReadyTimeout, opts.RequestTimeout = 2*time.Second, 500*time.Millisecond
			}
			hc := t3.NewHealthChecker(opts)

			rep, err := hc.Check(context.Background(), b, seed)
			require.NoError(t, err)
			assert.Equal(t, tc.pass, rep.Passed, "reason: %s", rep.Reason)
			assert.Positive(t, rep.Took)
			if tc.pass {
				assert.Empty(t, rep.Reason)
				assert.Equal(t, tc.endpoint, rep.Endpoint)
				assert.Equal(t, tc.schema, rep.Schema)
				assert.Regexp(t, `^t3_session_\d+_[0-9a-f]{12}$`, rep.Cookie, "a loopback build names its cookie by port and state dir")
			} else {
				assert.Contains(t, rep.Reason, tc.reason)
			}
			left, err := os.ReadDir(tmp)
			require.NoError(t, err)
			assert.Empty(t, left, "scratch removed")
			seedAfter, err := os.ReadFile(seed)
			require.NoError(t, err)
			assert.Equal(t, seedBefore, seedAfter, "the seed itself is never touched")
		})
	}
}

// TestHealthCheckThroughTheStartWindow: t3 accepts connections before it
// answers them and never answers one accepted in between (t3code #12215).
// The check's first poll lands there; it must not wait out a whole request
// timeout (10 s by default) on that connection.
func TestHealthCheckThroughTheStartWindow(t *testing.T) {
	b := stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{DeafStart: 700 * time.Millisecond})
	hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t)})
	rep, err := hc.Check(context.Background(), b, seedSnapshot(t, t3test.EraC))
	require.NoError(t, err)
	require.True(t, rep.Passed, rep.Reason)
	assert.Less(t, rep.Took, 5*time.Second, "answered soon after the attach, not after a request timeout of %s", t3.DefaultRequestTimeout)
}

// The seed snapshot is taken whatever the user was doing: a turn in flight
// in it is one t3 would continue at start, its provider started in the
// user's real workspace (on by default). The health check's serve must
// never do that: it runs the candidate on a copy (and as the seed's owner,
// or nobody, when the updater is root).
func TestHealthCheckNeverContinuesTheSeedsThreads(t *testing.T) {
	for _, tc := range []struct {
		era     t3test.Era
		version string
	}{{t3test.EraC, "0.0.30"}, {t3test.EraE, "0.0.46-nightly.20260901.900"}} {
		t.Run(string(tc.era), func(t *testing.T) {
			dir, ws := t3test.SharedDir(t), t3test.SharedDir(t)
			require.NoError(t, t3test.SeedState(dir, tc.era, t3test.SeedOptions{Threads: 2, ActiveTurns: 2, Workspace: ws}))
			seed := t3test.LiveDB(dir)
			before, err := os.ReadFile(seed)
			require.NoError(t, err)

			b := stageBuild(t, t3test.SharedDir(t), tc.version, t3test.Faults{})
			rep, err := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t)}).Check(context.Background(), b, seed)
			require.NoError(t, err)
			require.True(t, rep.Passed, rep.Reason)
			left, err := os.ReadDir(ws)
			require.NoError(t, err)
			assert.Empty(t, left, "no thread of the seed was continued in its workspace")
			after, err := os.ReadFile(seed)
			require.NoError(t, err)
			assert.Equal(t, before, after, "the seed itself is untouched")
		})
	}
}

func TestHealthCheckInfrastructureErrors(t *testing.T) {
	hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t), ReadyTimeout: time.Second})
	b := stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{})

	rep, err := hc.Check(context.Background(), b, filepath.Join(t3test.SharedDir(t), "missing.sqlite"))
	assert.Error(t, err, "no seed")
	assert.False(t, rep.Passed)
	assert.NotEmpty(t, rep.Reason)

	rep, err = hc.Check(context.Background(), rollout.Build{Version: "0.0.30", Bin: filepath.Join(t3test.SharedDir(t), "t3")}, seedSnapshot(t, t3test.EraC))
	require.NoError(t, err, "a build whose binary does not run is the build's verdict")
	assert.False(t, rep.Passed)
	assert.Contains(t, rep.Reason, "serve did not start")
}

func TestHealthCheckHonoursContext(t *testing.T) {
	hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t)})
	b := stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{Wedged: true})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := hc.Check(ctx, b, seedSnapshot(t, t3test.EraC))
	require.NoError(t, err)
	assert.False(t, rep.Passed)
	assert.Less(t, time.Since(start), 10*time.Second)
}

func TestMigrationErrorPatterns(t *testing.T) {
	assert.Equal(t, []string{"migration failed", "failed to migrate", "no column named",
		"NOT NULL constraint failed", "PersistenceSqlError"}, t3.MigrationErrorPatterns())
}

// The updater checks a staged build on a copy of the seed user's newest
// prebump snapshot before activating it.
func ExampleNewHealthChecker() {
	hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: "/var/tmp"})
	b := rollout.Build{Version: "0.0.30", Bin: "/opt/t3/versions/0.0.30/node_modules/.bin/t3"}
	rep, err := hc.Check(context.Background(), b, "/var/backups/t3/emil/prebump-0.0.30.sqlite")
	if err != nil || !rep.Passed {
		fmt.Printf("HEALTH-CHECK FAILED (%s)\n", rep.Reason)
	}
}

// A port picked free can be bound by another process before the serve binds
// it: the check gives the serve another, and a port lost every time is an
// error (the check could not run), never a verdict on the build.
func TestHealthCheckServeLosesItsPort(t *testing.T) {
	other, err := net.Listen("tcp", "127.0.0.1:0") // the other process
	require.NoError(t, err)
	defer other.Close()
	for _, tc := range []struct {
		name   string
		losses int
		pass   bool
		serves string
	}{
		{"once", 1, true, "2"},
		{"always", 99, false, "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{})
			// The wrapper sends its first serves to the other process's
			// port (the fake's last --port wins), as if that process had
			// bound the one picked first.
			dir := marksDir(t) // the wrapper counts here, as the build's user
			count, wrapper := filepath.Join(dir, "serves"), filepath.Join(dir, "t3")
			script := fmt.Sprintf(`#!/bin/sh
if [ "$1" = serve ]; then
  n=$(cat '%[1]s' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '%[1]s'
  if [ $n -le %[2]d ]; then exec '%[3]s' "$@" --port %[4]d; fi
fi
exec '%[3]s' "$@"
`, count, tc.losses, b.Bin, other.Addr().(*net.TCPAddr).Port)
			require.NoError(t, os.WriteFile(wrapper, []byte(script), 0o755))
			b.Bin = wrapper
			hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t), ReadyTimeout: 30 * time.Second})

			rep, err := hc.Check(context.Background(), b, seedSnapshot(t, t3test.EraC))
			serves, rerr := os.ReadFile(count)
			require.NoError(t, rerr)
			assert.Equal(t, tc.serves, strings.TrimSpace(string(serves)), "serves started")
			if tc.pass {
				require.NoError(t, err)
				assert.True(t, rep.Passed, rep.Reason)
				return
			}
			require.Error(t, err, "not the build's verdict")
			assert.Contains(t, err.Error(), "lost its port to another process 3 times")
			assert.Contains(t, err.Error(), "address already in use", "the serve's own words")
			assert.False(t, rep.Passed)
			assert.Contains(t, rep.Reason, "lost its port")
		})
	}
}

// A serve that leaves a child in a session of its own (out of reach of the
// group's signals) holding its output: the check still ends on time, not
// when that child closes the pipe.
func TestHealthCheckEndsDespiteADetachedChild(t *testing.T) {
	pidfile := filepath.Join(marksDir(t), "pid") // written as the build's user
	bin := filepath.Join(t3test.SharedDir(t), "t3")
	body := "#!/bin/sh\nsetsid sleep 20 & echo $! > " + pidfile + "\nexec sleep 20\n"
	require.NoError(t, os.WriteFile(bin, []byte(body), 0o755))
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidfile); err == nil {
			var pid int
			if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t), ReadyTimeout: 300 * time.Millisecond,
		StopGrace: 300 * time.Millisecond})
	start := time.Now()
	rep, err := hc.Check(context.Background(), rollout.Build{Version: "0.0.30", Bin: bin}, seedSnapshot(t, t3test.EraC))
	require.NoError(t, err)
	require.False(t, rep.Passed)
	require.Contains(t, rep.Reason, "not ready")
	require.Less(t, time.Since(start), 8*time.Second, "the check waited for the detached child's pipe")
}

// A database some alpha build touched carries ledger rows above t3's linear
// sequence (100-109, compatibility backfills); t3 deletes them before it
// migrates, so the ledger's largest id goes down from the seed's. That is
// not a build that failed to migrate.
func TestHealthCheckAfterTheLegacyLedgerRowsAreNormalized(t *testing.T) {
	b := stageBuild(t, t3test.SharedDir(t), "0.0.28", t3test.Faults{})
	seed := seedSnapshot(t, t3test.EraB)
	conn, err := sqlite.OpenConn(seed, sqlite.OpenReadWrite)
	require.NoError(t, err)
	require.NoError(t, sqlitex.ExecuteTransient(conn, `INSERT INTO effect_sql_migrations (migration_id, name) VALUES
		(100, 'ProjectionThreadsArchivedAtCompatibilityBackfill'), (109, 'ProjectionThreadShellSummaryCompatibilityBackfill')`, nil))
	require.NoError(t, conn.Close())
	hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t), ReadyTimeout: 30 * time.Second})

	rep, err := hc.Check(context.Background(), b, seed)
	require.NoError(t, err)
	assert.True(t, rep.Passed, "reason: %s", rep.Reason)
	assert.Equal(t, 32, rep.Schema)
}
