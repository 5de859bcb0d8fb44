package idlegate_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
)

// The newest activity decides the quiet time, whatever form its timestamp
// is written in. A column's greatest string is its newest time only when
// every value is in t3's own form (2026-09-06T12:00:00.000Z): a newer time
// written another way (SQLite's "YYYY-MM-DD HH:MM:SS.SSSZ", 24 characters
// and a Z too; an offset) sorts below older t3 stamps, and reading the
// string maximum then calls a user who was active seconds ago idle.
func TestDBOracleNewestTimeInAnotherForm(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, base string)
	}{
		{"state.sqlite: SQLite's form with a Z", sessionStamp(t3test.EraC, "2026-09-06 12:59:30.000Z")},
		{"state.sqlite: SQLite's form", sessionStamp(t3test.EraD, "2026-09-06 12:59:30")},
		{"state.sqlite: an offset", sessionStamp(t3test.EraA, "2026-09-06T08:59:30-04:00")},
		{"statev2: SQLite's form with a Z", runsTable(
			`('r1', 'completed', '2026-09-06T10:00:00.000Z', '2026-09-06 12:59:30.000Z')`,
			`('r2', 'completed', '2026-09-06T11:00:00.000Z', '2026-09-06T11:30:00.000Z')`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), ".t3")
			c.setup(t, base)
			o := idlegate.NewDBOracle(idlegate.DBOptions{Now: func() time.Time { return t0.Add(time.Hour) }})
			v, err := o.Idle(bg, instance(base))
			require.NoError(t, err)
			assert.False(t, v.Idle, "active 30 s ago: %s", v.Reason)
			assert.Equal(t, 30*time.Second, v.QuietFor)
		})
	}
}

// sessionStamp seeds era (every session stamped t0, 12:00) and writes stamp,
// 12:59:30 in another form, as one session's updated_at.
func sessionStamp(era t3test.Era, stamp string) func(t *testing.T, base string) {
	return func(t *testing.T, base string) {
		seed(era, 0)(t, base)
		exec(t, t3test.StateDB(base), `UPDATE projection_thread_sessions SET updated_at = '`+stamp+`'
			WHERE rowid = (SELECT min(rowid) FROM projection_thread_sessions)`)
	}
}

// A projection_thread_sessions whose rows carry no updated_at (a schema
// without the contract's NOT NULL) is judged by the database file's last
// write, as statev2's runs are: never idle on the spot.
func TestDBOracleSessionsWithoutTimestampsUseTheFileTime(t *testing.T) {
	base := filepath.Join(t.TempDir(), ".t3")
	seed(t3test.EraC, 0)(t, base)
	exec(t, t3test.StateDB(base), `DROP TABLE projection_thread_sessions;
		CREATE TABLE projection_thread_sessions (thread_id TEXT PRIMARY KEY, status TEXT, active_turn_id TEXT, updated_at TEXT);
		INSERT INTO projection_thread_sessions VALUES ('thread-0000', 'ready', NULL, NULL)`)
	assertQuietSinceTheFileWasWritten(t, base)
}
