package idlegate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
)

var (
	bg = context.Background()
	t0 = time.Date(2026, 9, 6, 12, 0, 0, 0, time.UTC)
)

func exec(tb testing.TB, path, q string) {
	tb.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	require.NoError(tb, err)
	defer c.Close()
	c.SetBusyTimeout(5 * time.Second)
	for _, stmt := range strings.Split(q, ";") {
		if strings.TrimSpace(stmt) != "" {
			require.NoError(tb, sqlitex.ExecuteTransient(c, stmt, nil))
		}
	}
}

// runStatus seeds one statev2 run, then sets its status (and ends the
// thread session's turn, so the run alone decides).
func runStatus(status string) func(*testing.T, string) {
	return func(t *testing.T, base string) {
		seed(t3test.EraE, 1)(t, base)
		exec(t, t3test.StateV2DB(base), `UPDATE orchestration_v2_projection_runs SET status = '`+status+`' WHERE status = 'running'; UPDATE projection_thread_sessions SET active_turn_id = NULL`)
	}
}

func instance(base string) t3fleet.Instance {
	return t3fleet.Instance{User: "emil", OSUser: "emil", BaseURL: "http://127.0.0.1:1", StateDir: base}
}

func TestDBOracle(t *testing.T) {
	cases := []struct {
		name       string
		era        t3test.Era
		setup      func(t *testing.T, base string) // after the base dir exists
		at         time.Duration                   // oracle's now = t0 + at
		idle       bool
		active     int
		suspicious bool
		quiet      time.Duration
		wantErr    error
	}{
		{name: "empty table is idle", era: t3test.EraC, setup: func(t *testing.T, base string) {
			require.NoError(t, t3test.Migrate(bg, base, t3test.EraC))
		}, idle: true},
		{name: "quiet for an hour", era: t3test.EraA, setup: seed(t3test.EraA, 0), at: time.Hour, idle: true, quiet: time.Hour},
		{name: "quiet exactly the threshold", era: t3test.EraD, setup: seed(t3test.EraD, 0), at: 900 * time.Second, idle: true, quiet: 900 * time.Second},
		{name: "recent activity", era: t3test.EraB, setup: seed(t3test.EraB, 0), at: 3 * time.Minute, quiet: 3 * time.Minute},
		{name: "turn in flight", era: t3test.EraC, setup: seed(t3test.EraC, 2), at: time.Hour, active: 2, quiet: time.Hour},
		{name: "turn in flight past the ceiling", era: t3test.EraD, setup: seed(t3test.EraD, 1), at: 7 * time.Hour, active: 1, suspicious: true, quiet: 7 * time.Hour},
		{name: "statev2 run in flight", era: t3test.EraE, setup: seed(t3test.EraE, 1), at: time.Hour, active: 1, quiet: time.Hour},
		{name: "statev2 quiet", era: t3test.EraE, setup: seed(t3test.EraE, 0), at: time.Hour, idle: true, quiet: time.Hour},
		{name: "statev2 run only (sessions finished)", era: t3test.EraE, setup: func(t *testing.T, base string) {
			seed(t3test.EraE, 1)(t, base)
			exec(t, t3test.StateV2DB(base), `UPDATE projection_thread_sessions SET active_turn_id = NULL`)
		}, at: time.Hour, active: 1, quiet: time.Hour},
		// A status the gate does not know counts as active (fail closed); an
		// end state of t3's OrchestrationV2RunStatus does not.
		{name: "statev2 run in an unknown status", era: t3test.EraE, setup: runStatus("paused_for_review"), at: time.Hour, active: 1, quiet: time.Hour},
		{name: "statev2 run cancelled", era: t3test.EraE, setup: runStatus("cancelled"), at: time.Hour, idle: true, quiet: time.Hour},
		{name: "statev2 run rolled back", era: t3test.EraE, setup: runStatus("rolled_back"), at: time.Hour, idle: true, quiet: time.Hour},
		{name: "statev2 run interrupted", era: t3test.EraE, setup: runStatus("interrupted"), at: time.Hour, idle: true, quiet: time.Hour},
		// A queued run waits its turn; a restart holds the queue until the
		// user resumes it, so it counts as work in flight.
		{name: "statev2 run queued", era: t3test.EraE, setup: runStatus("queued"), at: time.Hour, active: 1, quiet: time.Hour},
		// statev2 is a one-time copy of state.sqlite: its thread sessions are
		// frozen at the move, and a turn left running there is no turn.
		{name: "statev2 with a turn left running in its frozen copy", era: t3test.EraE, setup: func(t *testing.T, base string) {
			seed(t3test.EraE, 0)(t, base)
			exec(t, t3test.StateV2DB(base), `UPDATE projection_thread_sessions SET active_turn_id = 'turn-stuck', updated_at = '2026-09-06T12:59:00.000Z'`)
		}, at: time.Hour, idle: true, quiet: time.Hour},
		// The runs' columns are inferred: t3 writes requested_at and
		// completed_at; no updated_at, no started_at.
		{name: "statev2 runs with requested_at and completed_at only", era: t3test.EraE, setup: func(t *testing.T, base string) {
			seed(t3test.EraE, 0)(t, base)
			exec(t, t3test.StateV2DB(base), `DROP TABLE orchestration_v2_projection_runs;
				CREATE TABLE orchestration_v2_projection_runs (run_id TEXT PRIMARY KEY, thread_id TEXT, ordinal INTEGER, provider TEXT,
					provider_thread_id TEXT, status TEXT, requested_at TEXT, completed_at TEXT, payload_json TEXT, provider_instance_id TEXT);
				INSERT INTO orchestration_v2_projection_runs VALUES ('r1', 'thread-0000', 1, 'codex', NULL, 'completed', '2026-09-06T11:00:00.000Z', '2026-09-06T11:50:00.000Z', '{}', NULL);
				INSERT INTO orchestration_v2_projection_runs VALUES ('r2', 'thread-0001', 1, 'codex', NULL, 'running', '2026-09-06T05:00:00.000Z', NULL, '{}', NULL)`)
		}, at: 0, active: 1, suspicious: true, quiet: 10 * time.Minute},
		{name: "statev2 runs with requested_at and completed_at only, quiet", era: t3test.EraE, setup: func(t *testing.T, base string) {
			seed(t3test.EraE, 0)(t, base)
			exec(t, t3test.StateV2DB(base), `DROP TABLE orchestration_v2_projection_runs;
				CREATE TABLE orchestration_v2_projection_runs (run_id TEXT PRIMARY KEY, thread_id TEXT, status TEXT, requested_at TEXT, completed_at TEXT);
				INSERT INTO orchestration_v2_projection_runs VALUES ('r1', 'thread-0000', 'completed', '2026-09-06T11:00:00.000Z', '2026-09-06T11:40:00.000Z')`)
		}, at: 0, idle: true, quiet: 20 * time.Minute},
		{name: "statev2 runs whose columns are written in different formats", era: t3test.EraE, setup: runsTable(
			`('r1', 'completed', '2026-09-06T11:30:00+01:00', '2026-09-06T11:00:00.000Z')`), at: 0, quiet: time.Hour, idle: true},
		{name: "statev2 runs: a newer time in SQLite's own format is still the newest", era: t3test.EraE, setup: runsTable(
			`('r1', 'completed', '2026-09-06T10:00:00.000Z', '2026-09-06 12:59:30')`), at: time.Hour, quiet: 30 * time.Second},
		{name: "statev2 runs: a newer time with an offset is still the newest", era: t3test.EraE, setup: runsTable(
			`('r1', 'completed', '2026-09-06T12:00:00.000Z', '2026-09-06T08:59:30-04:00')`), at: time.Hour, quiet: 30 * time.Second},
		{name: "statev2 runs: a value that is not a time fails closed, wherever it sorts", era: t3test.EraE, setup: runsTable(
			`('r1', 'completed', '2026-09-06T10:00:00.000Z', '2026-09-06T10:30:00.000Z')`,
			`('r2', 'completed', '2026-09-06T10:40:00.000Z', '1757160000000')`), at: time.Hour, wantErr: idlegate.ErrBadTimestamp},
		{name: "missing database", era: t3test.EraC, setup: func(t *testing.T, base string) {}, wantErr: idlegate.ErrNoState},
		{name: "missing table", era: t3test.EraC, setup: func(t *testing.T, base string) {
			require.NoError(t, os.MkdirAll(t3test.UserDataDir(base), 0o755))
			exec(t, t3test.StateDB(base), `PRAGMA journal_mode=wal; CREATE TABLE other (x);`)
		}, wantErr: idlegate.ErrNoState},
		{name: "statev2 without its runs table", era: t3test.EraE, setup: func(t *testing.T, base string) {
			seed(t3test.EraE, 0)(t, base)
			exec(t, t3test.StateV2DB(base), `DROP TABLE orchestration_v2_projection_runs`)
		}, wantErr: idlegate.ErrNoState},
		{name: "unparseable timestamp", era: t3test.EraC, setup: func(t *testing.T, base string) {
			seed(t3test.EraC, 0)(t, base)
			exec(t, t3test.StateDB(base), `UPDATE projection_thread_sessions SET updated_at = 'yesterday'`)
		}, at: time.Hour, wantErr: idlegate.ErrBadTimestamp},
		{name: "future timestamp", era: t3test.EraC, setup: seed(t3test.EraC, 0), at: -time.Hour, wantErr: idlegate.ErrClockSkew},
		{name: "no state dir", era: t3test.EraC, wantErr: idlegate.ErrNoState},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), ".t3")
			in := instance(base)
			if c.setup != nil {
				c.setup(t, base)
			} else {
				in.StateDir = ""
			}
			o := idlegate.NewDBOracle(idlegate.DBOptions{Now: func() time.Time { return t0.Add(c.at) }})
			v, err := o.Idle(bg, in)
			if c.wantErr != nil {
				require.ErrorIs(t, err, c.wantErr)
				assert.False(t, v.Idle, "fail closed")
				assert.Contains(t, v.Reason, "not idle")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.idle, v.Idle, v.Reason)
			assert.Equal(t, c.active, v.ActiveTurns)
			assert.Equal(t, c.suspicious, v.Suspicious, v.Reason)
			assert.Equal(t, c.quiet, v.QuietFor)
			assert.NotEmpty(t, v.Reason)
		})
	}
}

// seed makes a populated state of era stamped t0, with active turns.
func seed(era t3test.Era, active int) func(t *testing.T, base string) {
	return func(t *testing.T, base string) {
		require.NoError(t, t3test.SeedState(base, era, t3test.SeedOptions{Threads: 4, ActiveTurns: active, Now: t0}))
	}
}

func TestDBOracleLockedIsNotIdle(t *testing.T) {
	base := filepath.Join(t.TempDir(), ".t3")
	seed(t3test.EraC, 0)(t, base)
	db := t3test.StateDB(base)
	exec(t, db, `PRAGMA journal_mode=delete;`)
	c, err := sqlite.OpenConn(db, sqlite.OpenReadWrite)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, sqlitex.ExecuteTransient(c, "BEGIN EXCLUSIVE", nil))
	defer sqlitex.ExecuteTransient(c, "ROLLBACK", nil)

	o := idlegate.NewDBOracle(idlegate.DBOptions{BusyTimeout: 50 * time.Millisecond, Now: func() time.Time { return t0.Add(time.Hour) }})
	v, err := o.Idle(bg, instance(base))
	require.Error(t, err)
	assert.False(t, v.Idle)
}

// The oracle only reads: a writer holding a write transaction is neither
// blocked by it nor does it block the oracle.
func TestDBOracleNeverTakesAWriteLock(t *testing.T) {
	base := filepath.Join(t.TempDir(), ".t3")
	seed(t3test.EraD, 0)(t, base)
	db := t3test.StateDB(base)
	w, err := sqlite.OpenConn(db, sqlite.OpenReadWrite)
	require.NoError(t, err)
	defer w.Close()
	w.SetBusyTimeout(0)
	require.NoError(t, sqlitex.ExecuteTransient(w, "BEGIN IMMEDIATE", nil))
	require.NoError(t, sqlitex.ExecuteTransient(w, `UPDATE projection_thread_sessions SET status = 'x'`, nil))

	o := idlegate.NewDBOracle(idlegate.DBOptions{BusyTimeout: 50 * time.Millisecond, Now: func() time.Time { return t0.Add(time.Hour) }})
	v, err := o.Idle(bg, instance(base))
	require.NoError(t, err)
	assert.True(t, v.Idle, v.Reason)
	require.NoError(t, sqlitex.ExecuteTransient(w, "COMMIT", nil), "the writer commits without waiting")
}

// A runs table with none of the timestamps the gate knows is judged by when
// the database file was last written: never as idle on the spot.
func TestDBOracleRunsWithoutTimestampsUseTheFileTime(t *testing.T) {
	base := filepath.Join(t.TempDir(), ".t3")
	seed(t3test.EraE, 0)(t, base)
	exec(t, t3test.StateV2DB(base), `DROP TABLE orchestration_v2_projection_runs;
		CREATE TABLE orchestration_v2_projection_runs (run_id TEXT PRIMARY KEY, thread_id TEXT, status TEXT);
		INSERT INTO orchestration_v2_projection_runs VALUES ('r1', 'thread-0000', 'completed')`)
	written := time.Now()
	for _, tc := range []struct {
		after time.Duration
		idle  bool
	}{{time.Minute, false}, {time.Hour, true}} {
		o := idlegate.NewDBOracle(idlegate.DBOptions{Now: func() time.Time { return written.Add(tc.after) }})
		v, err := o.Idle(bg, instance(base))
		require.NoError(t, err)
		assert.Equal(t, tc.idle, v.Idle, v.Reason)
		assert.InDelta(t, tc.after.Seconds(), v.QuietFor.Seconds(), 5)
	}
}

// runsTable replaces a seeded statev2's runs with rows (run_id, status,
// requested_at, completed_at).
func runsTable(rows ...string) func(t *testing.T, base string) {
	return func(t *testing.T, base string) {
		seed(t3test.EraE, 0)(t, base)
		exec(t, t3test.StateV2DB(base), `DROP TABLE orchestration_v2_projection_runs;
			CREATE TABLE orchestration_v2_projection_runs (run_id TEXT PRIMARY KEY, status TEXT, requested_at TEXT, completed_at TEXT);
			INSERT INTO orchestration_v2_projection_runs VALUES `+strings.Join(rows, ", "))
	}
}

// Runs whose timestamp columns exist but hold nothing are judged by the
// file's last write too, never as idle on the spot.
func TestDBOracleRunsWithEmptyTimestampsUseTheFileTime(t *testing.T) {
	base := filepath.Join(t.TempDir(), ".t3")
	runsTable(`('r1', 'completed', NULL, NULL)`)(t, base)
	assertQuietSinceTheFileWasWritten(t, base)
}

// assertQuietSinceTheFileWasWritten asks for a verdict a minute after the
// database at base was written (just now), and expects "not idle, quiet
// for about a minute": the file's last write stood in for the times.
func assertQuietSinceTheFileWasWritten(t *testing.T, base string) {
	t.Helper()
	written := time.Now()
	o := idlegate.NewDBOracle(idlegate.DBOptions{Now: func() time.Time { return written.Add(time.Minute) }})
	v, err := o.Idle(bg, instance(base))
	require.NoError(t, err)
	assert.False(t, v.Idle, v.Reason)
	assert.InDelta(t, time.Minute.Seconds(), v.QuietFor.Seconds(), 5)
}
