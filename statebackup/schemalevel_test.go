package statebackup_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

// A ledger some alpha build of t3 touched carries rows above the linear
// sequence (compatibility backfills, ids 17-21 and 100-109 under their own
// names), which t3 deletes before it migrates. The schema level leaves
// them out, as the health check does: a snapshot of such a database is
// recorded at the schema its tables have, not at 109. A row at one of
// those ids under another name is a real migration and counts.
func TestSchemaLevelLeavesOutTheLegacyLedgerRows(t *testing.T) {
	tests := []struct {
		name string
		rows string // inserted into the era B ledger (level 30)
		want int
	}{
		{"none", ``, 30},
		{"backfills above the sequence", `(100, 'ProjectionThreadsArchivedAtCompatibilityBackfill'), (109, 'ProjectionThreadShellSummaryCompatibilityBackfill')`, 30},
		{"a real migration at a legacy id", `(100, 'SomethingElse')`, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := mustSeed(t, "emil", t3test.EraB, t3test.SeedOptions{})
			live := mustLive(t, tg)
			if tc.rows != "" {
				c, err := sqlite.OpenConn(live, sqlite.OpenReadWrite)
				require.NoError(t, err)
				require.NoError(t, sqlitex.ExecuteTransient(c,
					`INSERT INTO effect_sql_migrations (migration_id, name) VALUES `+tc.rows, nil))
				require.NoError(t, c.Close())
			}
			st, _ := newStore(t, statebackup.Options{})
			snap, err := st.Backup(bg, tg, "")
			require.NoError(t, err)
			assert.Equal(t, tc.want, snap.SchemaLevel)
		})
	}
}
