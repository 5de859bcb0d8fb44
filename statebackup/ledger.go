package statebackup

import (
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// SchemaLevel returns the database's schema level: the largest
// migration_id in effect_sql_migrations, leaving out the rows t3 deletes
// before it migrates (see legacyLedgerRow); 0 when the table is absent or
// holds no other row. The health check reads a build's result with it
// too, so a snapshot and a check speak of the same level.
func SchemaLevel(c *sqlite.Conn) (int, error) {
	var n int
	err := sqlitex.ExecuteTransient(c,
		`SELECT count(*) FROM sqlite_master WHERE type='table' AND name='effect_sql_migrations'`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil }})
	if err != nil || n == 0 {
		return 0, err
	}
	var level int
	err = sqlitex.ExecuteTransient(c, `SELECT migration_id, name FROM effect_sql_migrations`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			if id := s.ColumnInt(0); id > level && !legacyLedgerRow(id, s.ColumnText(1)) {
				level = id
			}
			return nil
		}})
	return level, err
}

// legacyLedgerRow reports a ledger row that some alpha builds of t3 wrote
// above its linear migration sequence (compatibility backfills). t3 deletes
// these, by id and name, before it migrates (normalizeLegacyMigrationTimeline
// upstream), so they say nothing of the schema a database has.
func legacyLedgerRow(id int, name string) bool {
	switch id {
	case 17:
		return name == "ProjectionTurnUnifiedDiff"
	case 18, 20:
		return name == "ProjectionThreadProposedPlanImplementationBackfill"
	case 19, 21:
		return name == "BackfillLegacyModelSelections"
	case 100, 102, 104:
		return name == "ProjectionThreadsArchivedAtCompatibilityBackfill"
	case 101, 103, 105:
		return name == "ProjectionThreadsArchivedAtIndexCompatibilityBackfill"
	case 106:
		return name == "AuthAccessManagementCompatibilityBackfill"
	case 107:
		return name == "AuthSessionClientMetadataCompatibilityBackfill"
	case 108:
		return name == "AuthSessionLastConnectedAtCompatibilityBackfill"
	case 109:
		return name == "ProjectionThreadShellSummaryCompatibilityBackfill"
	}
	return false
}
