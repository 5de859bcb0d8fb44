package statebackup_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

// The newest prebump snapshot is the one taken last, whatever the clock
// did in between: `restore --latest-prebump` (the runbook's answer to a
// ROLLBACK FAILED) restores it, and Prune keeps it. A clock stepped back
// (NTP correcting a clock that ran ahead) used to sort the snapshot just
// taken below the older ones: --latest-prebump restored the bump before,
// and Prune deleted the one the last bump would roll back to.
func TestSnapshotOrderFollowsTakingOrder(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	cases := []struct {
		name         string
		first, later time.Time
	}{
		{"clock stepped back an hour",
			time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC), time.Date(2026, 11, 24, 2, 0, 5, 0, time.UTC)},
		{"clock stepped back within the second",
			time.Date(2026, 11, 24, 3, 0, 0, 900e6, time.UTC), time.Date(2026, 11, 24, 3, 0, 0, 100e6, time.UTC)},
		{"same millisecond",
			time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC), time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)},
		// DST fall back: local 02:30 CEST, then 02:10 CET forty minutes
		// later. Names are in UTC, so this one never reordered.
		{"DST fall back, local clock",
			time.Date(2026, 10, 25, 2, 30, 0, 0, berlin), time.Date(2026, 10, 25, 2, 30, 0, 0, berlin).Add(40 * time.Minute)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := c.first
			st, _ := newStore(t, statebackup.Options{Now: func() time.Time { return now }})
			tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{})
			// Older bumps, taken two and one minute before the first, before
			// the clock went wrong.
			for i, v := range []string{"0.0.28", "0.0.29"} {
				now = c.first.Add(time.Duration(i-2) * time.Minute)
				_, err := st.Backup(bg, tg, statebackup.PrebumpLabel(v))
				require.NoError(t, err)
			}
			now = c.first
			prev, err := st.Backup(bg, tg, statebackup.PrebumpLabel("0.0.30"))
			require.NoError(t, err)
			now = c.later
			last, err := st.Backup(bg, tg, statebackup.PrebumpLabel("0.0.31"))
			require.NoError(t, err)

			list, err := st.List(bg, tg)
			require.NoError(t, err)
			require.Len(t, list, 4)
			require.Equal(t, last.Path, list[0].Path, "newest first")
			require.Equal(t, prev.Path, list[1].Path)
			require.Equal(t, statebackup.PrebumpLabel("0.0.29"), list[2].Label)
			require.Equal(t, statebackup.PrebumpLabel("0.0.28"), list[3].Label)
			got, err := st.LatestPrebump(bg, tg)
			require.NoError(t, err)
			require.Equal(t, last.Path, got.Path, "--latest-prebump")

			require.NoError(t, st.Prune(bg, tg, 1))
			list, err = st.List(bg, tg)
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, last.Path, list[0].Path, "prune kept the snapshot taken last")
		})
	}
}
