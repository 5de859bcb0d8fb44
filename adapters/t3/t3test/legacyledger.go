package t3test

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// obsoleteLegacyMigrations are the ledger rows some of t3's alpha builds
// wrote above its linear migration sequence (compatibility backfills).
// Effect's migrator runs only ids above the ledger's largest, so t3 deletes
// these rows, by id and name, before it migrates
// (normalizeLegacyMigrationTimeline): the ledger's largest id can go down.
var obsoleteLegacyMigrations = map[int][]string{
	17:  {"ProjectionTurnUnifiedDiff"},
	18:  {"ProjectionThreadProposedPlanImplementationBackfill"},
	19:  {"BackfillLegacyModelSelections"},
	20:  {"ProjectionThreadProposedPlanImplementationBackfill"},
	21:  {"BackfillLegacyModelSelections"},
	100: {"ProjectionThreadsArchivedAtCompatibilityBackfill"},
	101: {"ProjectionThreadsArchivedAtIndexCompatibilityBackfill"},
	102: {"ProjectionThreadsArchivedAtCompatibilityBackfill"},
	103: {"ProjectionThreadsArchivedAtIndexCompatibilityBackfill"},
	104: {"ProjectionThreadsArchivedAtCompatibilityBackfill"},
	105: {"ProjectionThreadsArchivedAtIndexCompatibilityBackfill"},
	106: {"AuthAccessManagementCompatibilityBackfill"},
	107: {"AuthSessionClientMetadataCompatibilityBackfill"},
	108: {"AuthSessionLastConnectedAtCompatibilityBackfill"},
	109: {"ProjectionThreadShellSummaryCompatibilityBackfill"},
}

// normalizeLegacyLedger deletes the obsolete legacy rows of the ledger, as
// t3 does before it migrates, and logs their ids.
func normalizeLegacyLedger(conn *sqlite.Conn, log *slog.Logger) error {
	var ids []int
	err := sqlitex.ExecuteTransient(conn, `SELECT migration_id, name FROM effect_sql_migrations
		WHERE migration_id BETWEEN 17 AND 21 OR migration_id BETWEEN 100 AND 109 ORDER BY migration_id`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			id, name := s.ColumnInt(0), s.ColumnText(1)
			for _, n := range obsoleteLegacyMigrations[id] {
				if n == name {
					ids = append(ids, id)
				}
			}
			return nil
		}})
	if err != nil {
		return fmt.Errorf("read migration ledger: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = strconv.Itoa(id)
	}
	log.Warn("normalizing obsolete legacy migration records", "migrationIds", strings.Join(list, ","))
	for _, id := range ids {
		if err := sqlitex.Execute(conn, `DELETE FROM effect_sql_migrations WHERE migration_id = ?`,
			&sqlitex.ExecOptions{Args: []any{id}}); err != nil {
			return fmt.Errorf("normalize migration ledger: %w", err)
		}
	}
	return nil
}
