package statebackup_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

// asideFiles lists what restores set aside in dir: <db>.replaced-* and their
// sidecars.
func asideFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".replaced-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// A restore killed once the old database is set aside (before the swap, or
// before its cleanup) leaves <db>.replaced-<ts> and its sidecars: a whole
// copy of the user's database. The next restore, without KeepReplaced,
// must not leave them there for good.
func TestRestoreAfterACrashLeavesNothingAside(t *testing.T) {
	for _, era := range []t3test.Era{t3test.EraC, t3test.EraE} {
		for _, step := range []statebackup.RestoreStep{statebackup.StepSwap, statebackup.StepCleanup} {
			t.Run(string(era)+"/"+string(step), func(t *testing.T) {
				hook, crash := crashAt(step)
				st, dest := newStore(t, statebackup.Options{BeforeRestoreStep: hook})
				tg, snap := snapshotWithMarker(t, era, st, 3, 1)
				tg = killedServerImage(t, tg, 2)
				require.ErrorIs(t, st.Restore(bg, tg, snap), crash)
				require.NotEmpty(t, asideFiles(t, tg.UserdataDir), "the crash left the old database aside")

				require.NoError(t, statebackup.NewStore(dest, statebackup.Options{}).Restore(bg, tg, snap))
				assert.Equal(t, 3, marker(t, mustLive(t, tg)))
				assert.Empty(t, asideFiles(t, tg.UserdataDir), "set-aside files of the crashed restore left behind")
			})
		}
	}
}

// Restoring a state.sqlite snapshot over an era-E layout retires
// statev2.sqlite by renaming it and its sidecars one by one. A restore
// killed between those renames leaves statev2.sqlite-wal (commits of the
// retired database) beside no statev2.sqlite: SQLite would replay it into
// the next statev2.sqlite a build creates. The next restore must move it
// away too.
func TestRestoreFinishesAnInterruptedRetire(t *testing.T) {
	hook, crash := crashAt(statebackup.StepCleanup)
	st, dest := newStore(t, statebackup.Options{BeforeRestoreStep: hook})
	tg, snap := snapshotWithMarker(t, t3test.EraD, st, 1, 2)
	require.NoError(t, t3test.Migrate(bg, filepath.Dir(tg.UserdataDir), t3test.EraE))
	tg = killedServerImage(t, tg, 5) // statev2 with commits in its WAL
	v2 := filepath.Join(tg.UserdataDir, statebackup.StateV2DB)
	require.ErrorIs(t, st.Restore(bg, tg, snap), crash)
	// Killed after the retire's first rename, the main file's.
	require.NoError(t, os.Rename(v2, v2+".retired-20260906-120000"))
	_, err := os.Stat(v2 + "-wal")
	require.NoError(t, err, "the image must leave statev2's WAL behind")

	require.NoError(t, statebackup.NewStore(dest, statebackup.Options{}).Restore(bg, tg, snap))
	assert.Equal(t, 1, marker(t, mustLive(t, tg)))
	for _, sfx := range []string{"", "-wal", "-shm", "-journal"} {
		_, err := os.Lstat(v2 + sfx)
		assert.ErrorIs(t, err, os.ErrNotExist, "%s%s left beside the restored state.sqlite", statebackup.StateV2DB, sfx)
	}
}
