package t3

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
)

// Each of quiesceCopy's two defences on its own: the setting that turns
// t3's continuing of threads off, and nothing left in flight in the copy
// that the idle gate would count, in any era, in a status it does not know
// too.
func TestQuiesceCopy(t *testing.T) {
	for _, era := range []t3test.Era{t3test.EraC, t3test.EraE} {
		t.Run(string(era), func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, t3test.SeedState(dir, era, t3test.SeedOptions{Threads: 4, ActiveTurns: 2}))
			db := t3test.LiveDB(dir)
			if era.UsesStateV2() {
				run(t, db, `UPDATE orchestration_v2_projection_runs SET status = 'pending' WHERE status = 'running' AND thread_id = 'thread-0001'`)
			} else {
				run(t, db, `UPDATE projection_turns SET state = 'pending' WHERE state = 'running' AND thread_id = 'thread-0001'`)
			}
			userdata := filepath.Join(t.TempDir(), "userdata")
			_, err := copySeed(db, filepath.Join(userdata, "state.sqlite"))
			require.NoError(t, err)
			require.NoError(t, quiesceCopy(context.Background(), userdata))

			settings, err := os.ReadFile(filepath.Join(userdata, "settings.json"))
			require.NoError(t, err)
			assert.JSONEq(t, `{"continueThreadsAfterServerUpdate":false}`, string(settings))
			copyDB := filepath.Join(userdata, "state.sqlite")
			ended := "('" + strings.Join(idlegate.EndRunStatuses(), "','") + "')"
			assert.Equal(t, 0, count(t, copyDB, `SELECT count(*) FROM projection_thread_sessions WHERE active_turn_id IS NOT NULL`))
			assert.Equal(t, 0, count(t, copyDB, `SELECT count(*) FROM projection_turns WHERE state NOT IN `+ended))
			if era.UsesStateV2() {
				assert.Equal(t, 0, count(t, copyDB, `SELECT count(*) FROM orchestration_v2_projection_runs WHERE status NOT IN `+ended))
			}
			v, err := idlegate.NewDBOracle(idlegate.DBOptions{}).Idle(t.Context(),
				t3fleet.Instance{User: "emil", OSUser: "emil", StateDir: filepath.Dir(userdata)})
			require.NoError(t, err)
			assert.Zero(t, v.ActiveTurns, "the gate sees nothing in flight in the copy")
			seedVerdict, err := idlegate.NewDBOracle(idlegate.DBOptions{}).Idle(t.Context(),
				t3fleet.Instance{User: "emil", OSUser: "emil", StateDir: dir})
			require.NoError(t, err)
			assert.Equal(t, 2, seedVerdict.ActiveTurns, "the seed itself still has its two")
		})
	}
}

func run(t *testing.T, path, q string) {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, sqlitex.ExecuteTransient(c, q, nil))
}

func count(t *testing.T, path, q string) int {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	require.NoError(t, err)
	defer c.Close()
	n := -1
	require.NoError(t, sqlitex.ExecuteTransient(c, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil }}))
	return n
}
