package idlegate_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/internal/realtest"
)

// alice swaps her ~/.t3 with a symlink to bob's, over and over
// (RENAME_EXCHANGE), while root's idle gate reads her state. LiveDB walks
// her real directory, then SQLite opens the database, its -wal and -shm by
// path: a swap in between had root read bob's database, and alice's
// verdict carry his turns in flight. Alice has none; bob has seven, so a
// verdict with any turn in flight was read from bob's. Each case runs
// until enough verdicts are given to judge, within a deadline.
func TestDBOraclePathRaceReadsNoOtherUsersDatabase(t *testing.T) {
	realtest.NeedRoot(t)
	const aliceUID, bobUID = 65534, 65533
	cases := []struct {
		name string
		era  t3test.Era
		prep func(t *testing.T, aliceBase string)
	}{
		{"state.sqlite", t3test.EraC, nil},
		{"statev2.sqlite", t3test.EraE, nil},
		// Both read: statev2's runs count beside a state.sqlite that looks newer.
		{"statev2.sqlite beside a newer state.sqlite", t3test.EraE, func(t *testing.T, base string) {
			touch(t, t3test.StateDB(base), t0.Add(time.Minute))
			touch(t, t3test.StateV2DB(base), t0)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			home := t.TempDir()
			aliceBase, bobBase := filepath.Join(home, "alice", ".t3"), filepath.Join(home, "bob", ".t3")
			require.NoError(t, t3test.SeedState(aliceBase, c.era, t3test.SeedOptions{Threads: 8, Now: t0}))
			require.NoError(t, t3test.SeedState(bobBase, c.era, t3test.SeedOptions{Threads: 8, ActiveTurns: 7, Now: t0}))
			if c.prep != nil {
				c.prep(t, aliceBase)
			}
			require.NoError(t, os.Chmod(home, 0o755))
			realtest.OpenPath(t, home)
			chownTree(t, filepath.Dir(aliceBase), aliceUID)
			chownTree(t, filepath.Dir(bobBase), bobUID)
			require.NoError(t, os.Chmod(filepath.Dir(bobBase), 0o700)) // bob's home

			o := idlegate.NewDBOracle(idlegate.DBOptions{Now: func() time.Time { return t0.Add(time.Hour) }})
			v, err := o.Idle(bg, instance(aliceBase))
			require.NoError(t, err)
			require.True(t, v.Idle, "alice, before the swaps: %s", v.Reason)

			stop := realtest.SwapWithSymlink(t, aliceBase, bobBase)
			ok, leaked := 0, 0
			deadline := time.Now().Add(10 * time.Second)
			for i := 0; ok < 50 && time.Now().Before(deadline); i++ {
				v, err := o.Idle(bg, instance(aliceBase))
				if err != nil {
					if testing.Verbose() && i%200 == 0 {
						t.Log(err)
					}
					continue
				}
				ok++
				if v.ActiveTurns != 0 {
					leaked++
				}
			}
			stop()
			t.Logf("%d verdicts given, %d of them from bob's database", ok, leaked)
			require.NotZero(t, ok, "no verdict given while the swaps ran: nothing judged")
			assert.Zero(t, leaked, "root read bob's database for alice's verdict")
		})
	}
}

// chownTree gives every file under dir to uid (and the group of that
// number).
func chownTree(t *testing.T, dir string, uid int) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	}))
}
