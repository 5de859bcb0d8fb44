package t3test_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// query runs q on the database at path and returns the first column of every row.
func query(t *testing.T, path, q string, args ...any) []string {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	require.NoError(t, err)
	defer conn.Close()
	conn.SetBusyTimeout(5 * time.Second)
	var out []string
	require.NoError(t, sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args,
		ResultFunc: func(s *sqlite.Stmt) error { out = append(out, s.ColumnText(0)); return nil }}))
	return out
}

func columns(t *testing.T, path, table string) []string {
	t.Helper()
	return query(t, path, "SELECT name FROM pragma_table_info(?) ORDER BY cid", table)
}

func ledger(t *testing.T, path string) int {
	t.Helper()
	n, err := t3test.ReadLedgerMax(path)
	require.NoError(t, err)
	return n
}

func TestMigrateFreshPerEra(t *testing.T) {
	for _, era := range t3test.Eras() {
		t.Run(string(era), func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, t3test.Migrate(context.Background(), dir, era))
			db := t3test.LiveDB(dir)
			if era.UsesStateV2() {
				assert.Equal(t, t3test.StateV2DB(dir), db)
			} else {
				assert.Equal(t, t3test.StateDB(dir), db)
			}
			assert.Equal(t, era.SchemaLevel(), ledger(t, db))
			assert.Equal(t, []string{"wal"}, query(t, db, "PRAGMA journal_mode"))
			assert.Equal(t, []string{"thread_id", "status", "provider_name", "provider_session_id",
				"provider_thread_id", "active_turn_id", "last_error", "updated_at", "runtime_mode",
				"provider_instance_id"}, columns(t, db, "projection_thread_sessions"))
			links := columns(t, db, "auth_pairing_links")
			sessions := columns(t, db, "auth_sessions")
			if era.UsesScopes() {
				assert.Contains(t, links, "scopes")
				assert.Contains(t, links, "proof_key_thumbprint")
				assert.NotContains(t, links, "role")
				assert.Contains(t, sessions, "scopes")
			} else {
				assert.Contains(t, links, "role")
				assert.NotContains(t, links, "scopes")
				assert.Contains(t, sessions, "role")
			}
			assert.Contains(t, sessions, "last_connected_at")
			assert.Contains(t, sessions, "client_user_agent")
			names := query(t, db, "SELECT name FROM effect_sql_migrations WHERE migration_id IN (31, 32) ORDER BY migration_id")
			if era.UsesScopes() {
				assert.Equal(t, []string{"AuthAuthorizationScopes", "AuthPairingProofKeyThumbprint"}, names)
			} else {
				assert.Empty(t, names)
			}
			id, err := t3test.EnvironmentID(dir)
			require.NoError(t, err)
			assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, id)
			key, err := os.ReadFile(filepath.Join(t3test.SecretsDir(dir), "server-signing-key.bin"))
			require.NoError(t, err)
			assert.Len(t, key, 32)
			assert.DirExists(t, filepath.Dir(t3test.LogPath(dir)))
			// A second run finds nothing pending.
			require.NoError(t, t3test.Migrate(context.Background(), dir, era))
			assert.Equal(t, era.SchemaLevel(), ledger(t, db))
		})
	}
}

func TestMigration31WipesSessions(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraB))
	db := t3test.StateDB(dir)
	query(t, db, `INSERT INTO auth_sessions (session_id, subject, role, method, issued_at, expires_at)
		VALUES ('s1', 'owner', 'owner', 'browser-session-cookie', '2026-09-06T00:00:00.000Z', '2026-10-06T00:00:00.000Z')`)
	require.Equal(t, []string{"1"}, query(t, db, "SELECT COUNT(*) FROM auth_sessions"))

	require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraC))
	assert.Equal(t, []string{"0"}, query(t, db, "SELECT COUNT(*) FROM auth_sessions"))
	assert.Equal(t, 32, ledger(t, db))
}

func TestOldBuildLeavesForwardMigratedDBAlone(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraD))
	require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraB))
	db := t3test.StateDB(dir)
	assert.Equal(t, 32, ledger(t, db))
	assert.NotContains(t, columns(t, db, "auth_pairing_links"), "role")
}

func TestFailedMigrationRollsBackTheBatch(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraB))
	db := t3test.StateDB(dir)
	query(t, db, "DROP TABLE auth_sessions") // migration 31 drops it: it will fail

	err := t3test.Migrate(context.Background(), dir, t3test.EraC)
	var me *t3test.MigrationError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, 31, me.ID)
	assert.Contains(t, err.Error(), `Migration "31_AuthAuthorizationScopes" failed`)
	assert.Equal(t, 30, ledger(t, db))
	assert.Contains(t, columns(t, db, "auth_pairing_links"), "role", "the DROP of links was rolled back")
}

func TestMigrateUnknownEra(t *testing.T) {
	err := t3test.Migrate(context.Background(), t.TempDir(), "Z")
	assert.True(t, errors.Is(err, t3test.ErrUnknownEra), "got %v", err)
}

func TestEraECopiesStateOnceAndFreezesIt(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, t3test.SeedState(dir, t3test.EraD, t3test.SeedOptions{Threads: 4}))
	before, err := os.ReadFile(t3test.StateDB(dir))
	require.NoError(t, err)

	require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraE))
	assert.Equal(t, t3test.StateV2DB(dir), t3test.LiveDB(dir))
	assert.Equal(t, 34, ledger(t, t3test.StateV2DB(dir)))
	assert.Equal(t, 32, ledger(t, t3test.StateDB(dir)))
	assert.Equal(t, []string{"4"}, query(t, t3test.StateV2DB(dir), "SELECT COUNT(*) FROM projection_threads"))
	assert.Equal(t, []string{"wal"}, query(t, t3test.StateV2DB(dir), "PRAGMA journal_mode"))

	require.NoError(t, t3test.SetActiveTurn(dir, t3test.SeedThreadID(0), true, time.Now()))
	after, err := os.ReadFile(t3test.StateDB(dir))
	require.NoError(t, err)
	assert.Equal(t, before, after, "state.sqlite stays frozen once statev2 exists")
}

func TestSeedState(t *testing.T) {
	now := time.Date(2026, 9, 6, 0, 0, 0, 0, time.UTC)
	for _, era := range t3test.Eras() {
		t.Run(string(era), func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, t3test.SeedState(dir, era, t3test.SeedOptions{Threads: 5, ActiveTurns: 2, Now: now}))
			db := t3test.LiveDB(dir)
			assert.Equal(t, []string{"5"}, query(t, db, "SELECT COUNT(*) FROM projection_threads"))
			assert.Equal(t, []string{"2026-09-06T00:00:00.000Z"}, query(t, db, "SELECT DISTINCT updated_at FROM projection_threads"))
			if !era.UsesStateV2() {
				assert.Equal(t, []string{"2"}, query(t, db, "SELECT COUNT(*) FROM projection_thread_sessions WHERE active_turn_id IS NOT NULL"))
				return
			}
			// statev2: the runs say what is active; the thread sessions are
			// the copy the move made, and stay as they were.
			assert.Equal(t, []string{"0"}, query(t, db, "SELECT COUNT(*) FROM projection_thread_sessions WHERE active_turn_id IS NOT NULL"))
			assert.Equal(t, []string{"2"}, query(t, db, "SELECT COUNT(*) FROM orchestration_v2_projection_runs WHERE status = 'running'"))
			assert.Equal(t, []string{"5"}, query(t, db, "SELECT COUNT(*) FROM orchestration_v2_projection_runs WHERE status = 'completed' AND completed_at = '2026-09-06T00:00:00.000Z'"))
		})
	}
}

func TestSeedStateBulkRowsGrowTheDB(t *testing.T) {
	small, big := t.TempDir(), t.TempDir()
	require.NoError(t, t3test.SeedState(small, t3test.EraC, t3test.SeedOptions{}))
	require.NoError(t, t3test.SeedState(big, t3test.EraC, t3test.SeedOptions{BulkRows: 2000, BulkRowBytes: 1000}))
	assert.Equal(t, []string{"2000"}, query(t, t3test.LiveDB(big), "SELECT COUNT(*) FROM orchestration_events"))
	size := func(dir string) int64 {
		var n int64
		for _, f := range []string{t3test.LiveDB(dir), t3test.LiveDB(dir) + "-wal"} {
			if st, err := os.Stat(f); err == nil {
				n += st.Size()
			}
		}
		return n
	}
	assert.Greater(t, size(big), size(small)+1_900_000)
}

func TestSetActiveTurn(t *testing.T) {
	ts := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	for _, era := range t3test.Eras() {
		t.Run(string(era), func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, t3test.SeedState(dir, era, t3test.SeedOptions{}))
			db := t3test.LiveDB(dir)
			id := t3test.SeedThreadID(1)
			at := time.Date(2026, 9, 6, 12, 30, 1, 234_000_000, time.FixedZone("x", 3600))

			require.NoError(t, t3test.SetActiveTurn(dir, id, true, at))
			if era.UsesStateV2() {
				assert.Equal(t, []string{"2026-09-06T11:30:01.234Z|2"}, query(t, db,
					"SELECT requested_at || '|' || ordinal FROM orchestration_v2_projection_runs WHERE thread_id = ? AND status = 'running'", id))
				require.NoError(t, t3test.SetActiveTurn(dir, id, false, at.Add(time.Second)))
				assert.Equal(t, []string{"0"}, query(t, db, "SELECT COUNT(*) FROM orchestration_v2_projection_runs WHERE status IN ('preparing','starting','running','waiting')"))
				assert.Equal(t, []string{"2026-09-06T11:30:02.234Z"}, query(t, db, "SELECT completed_at FROM orchestration_v2_projection_runs WHERE thread_id = ? AND ordinal = 2", id))
				assert.Equal(t, []string{"0"}, query(t, db, "SELECT COUNT(*) FROM projection_thread_sessions WHERE active_turn_id IS NOT NULL"), "the frozen copy is untouched")
				return
			}
			got := query(t, db, "SELECT active_turn_id IS NOT NULL, updated_at FROM projection_thread_sessions WHERE thread_id = ?", id)
			assert.Equal(t, []string{"1"}, got)
			assert.Equal(t, []string{"2026-09-06T11:30:01.234Z"}, query(t, db, "SELECT updated_at FROM projection_thread_sessions WHERE thread_id = ?", id))

			require.NoError(t, t3test.SetActiveTurn(dir, id, false, at.Add(time.Second)))
			assert.Equal(t, []string{"0"}, query(t, db, "SELECT COUNT(*) FROM projection_thread_sessions WHERE active_turn_id IS NOT NULL"))
			for _, u := range query(t, db, "SELECT updated_at FROM projection_thread_sessions") {
				assert.Regexp(t, ts, u)
			}
		})
	}
}

// Rows some alpha builds wrote above the linear sequence are deleted, by id
// and name, before the migrations run; a row of the same id with another
// name is a real migration and stays.
func TestMigrateNormalizesObsoleteLegacyRows(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraB))
	db := t3test.StateDB(dir)
	query(t, db, `INSERT INTO effect_sql_migrations (migration_id, name) VALUES
		(100, 'ProjectionThreadsArchivedAtCompatibilityBackfill'), (109, 'ProjectionThreadShellSummaryCompatibilityBackfill')`)
	require.Equal(t, 109, ledger(t, db))

	require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraD))
	assert.Equal(t, 32, ledger(t, db), "31 and 32 ran once the legacy rows were gone")
	assert.Contains(t, columns(t, db, "auth_pairing_links"), "scopes")
	assert.Equal(t, []string{"1"}, query(t, db, `SELECT count(*) FROM effect_sql_migrations WHERE migration_id = 17`), "the real 17 stays")
}
