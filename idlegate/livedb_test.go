package idlegate_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
)

// An era-E user (live state in statev2.sqlite, state.sqlite the frozen
// copy the move left) whose state.sqlite looks written after statev2.sqlite
// (a clock stepped back after the move, or anything that opened or copied
// the old file) must still be judged from statev2.sqlite's runs. The gate
// used to read state.sqlite alone, the newest by file time: no turn in
// flight there, quiet since the move, so a user mid-run read as idle and
// was restarted.
func TestDBOracleBothDatabasesPresent(t *testing.T) {
	cases := []struct {
		name      string
		v2Run     bool // a run in flight in statev2.sqlite
		v1Turn    bool // a turn in flight in state.sqlite
		v1Younger bool // state.sqlite's file time is after statev2.sqlite's
		idle      bool
	}{
		{"statev2 busy, state.sqlite looks newer", true, false, true, false},
		{"statev2 busy, statev2 newer", true, false, false, false},
		{"both quiet, state.sqlite looks newer", false, false, true, true},
		{"both quiet, statev2 newer", false, false, false, true},
		// Back on state.sqlite (a build before statev2, statev2 left stale):
		// its turns count.
		{"state.sqlite busy and newer", false, true, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), ".t3")
			seed(t3test.EraD, 0)(t, base)
			require.NoError(t, t3test.Migrate(bg, base, t3test.EraE))
			active := 0
			if c.v2Run {
				active = 1
			}
			seed(t3test.EraE, active)(t, base)
			if c.v1Turn {
				exec(t, t3test.StateDB(base), `UPDATE projection_thread_sessions SET active_turn_id = 'turn-1' WHERE thread_id = 'thread-0000'`)
			}
			older, newer := time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
			v1, v2 := newer, older
			if !c.v1Younger {
				v1, v2 = older, newer
			}
			touch(t, t3test.StateDB(base), v1)
			touch(t, t3test.StateV2DB(base), v2)

			o := idlegate.NewDBOracle(idlegate.DBOptions{Now: func() time.Time { return t0.Add(time.Hour) }})
			v, err := o.Idle(bg, instance(base))
			require.NoError(t, err)
			require.Equal(t, c.idle, v.Idle, v.Reason)
		})
	}
}

// touch sets the modification time of a database and its sidecars.
func touch(t *testing.T, db string, at time.Time) {
	t.Helper()
	for _, sfx := range []string{"", "-wal", "-shm"} {
		if err := os.Chtimes(db+sfx, at, at); err != nil && !os.IsNotExist(err) {
			require.NoError(t, err)
		}
	}
}
