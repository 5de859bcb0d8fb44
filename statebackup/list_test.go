package statebackup_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

func TestSnapshotNames(t *testing.T) {
	ts := time.Date(2026, 6, 16, 1, 2, 3, 0, time.UTC)
	cases := []struct {
		label string
		seq   int
		name  string
	}{
		{"daily", 0, "state-20260616-010203.sqlite"},
		{"", 0, "state-20260616-010203.sqlite"},
		{"manual", 0, "state-manual-20260616-010203.sqlite"},
		{"prebump-0.0.28", 0, "state-prebump-0.0.28-20260616-010203.sqlite"},
		{"prebump-0.0.28-nightly.20260616.571", 2, "state-prebump-0.0.28-nightly.20260616.571-20260616-010203.2.sqlite"},
	}
	for _, c := range cases {
		assert.Equal(t, c.name, statebackup.SnapshotName(c.label, ts, c.seq))
		label, got, ok := statebackup.ParseSnapshotName(c.name)
		require.True(t, ok, c.name)
		assert.True(t, got.Equal(ts), c.name)
		if c.label == "" {
			c.label = "daily"
		}
		assert.Equal(t, c.label, label, c.name)
	}
	for _, bad := range []string{"state.sqlite", "state-2026-01.sqlite", "x-20260616-010203.sqlite", "state-20260616-010203.sqlite.json"} {
		_, _, ok := statebackup.ParseSnapshotName(bad)
		assert.False(t, ok, bad)
	}
}

// plant writes a seed-style snapshot (no metadata) named for label and t.
func plant(t *testing.T, dir, label string, ts time.Time) string {
	t.Helper()
	p := filepath.Join(dir, statebackup.SnapshotName(label, ts, 0))
	require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
	return filepath.Base(p)
}

func TestPrune(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 9, d, 3, 0, 0, 0, time.UTC) }
	cases := []struct {
		name string
		have map[string]int // label -> day, one snapshot each
		keep int
		kept []string // labels@day kept
	}{
		{"keep 2 of each kind",
			map[string]int{"daily@1": 1, "daily@2": 2, "daily@3": 3, "prebump-0.0.1": 1, "prebump-0.0.2": 2, "prebump-0.0.3": 3, "manual@4": 4},
			2, []string{"daily@2", "daily@3", "manual@4", "prebump-0.0.2", "prebump-0.0.3"}},
		{"prebumps do not push dailies out",
			map[string]int{"daily@1": 1, "prebump-0.0.2": 2, "prebump-0.0.3": 3, "prebump-0.0.4": 4},
			1, []string{"daily@1", "prebump-0.0.4"}},
		{"the newest prebump survives even when old",
			map[string]int{"prebump-0.0.1": 1, "daily@5": 5, "daily@6": 6},
			1, []string{"daily@6", "prebump-0.0.1"}},
		{"keep 0 means the default",
			map[string]int{"daily@1": 1, "daily@2": 2},
			0, []string{"daily@1", "daily@2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, dest := newStore(t, statebackup.Options{})
			dir := filepath.Join(dest, "emil")
			require.NoError(t, os.MkdirAll(dir, 0o700))
			byName := map[string]string{}
			for key, d := range c.have {
				label := key
				if i := len(label) - 2; i > 0 && label[i] == '@' {
					label = label[:i]
				}
				byName[plant(t, dir, label, day(d))] = key
			}
			tg := statebackup.Target{User: "emil"}
			require.NoError(t, st.Prune(bg, tg, c.keep))
			list, err := st.List(bg, tg)
			require.NoError(t, err)
			var kept []string
			for _, s := range list {
				kept = append(kept, byName[filepath.Base(s.Path)])
			}
			sort.Strings(kept)
			assert.Equal(t, c.kept, kept)
		})
	}
}

func TestPruneDeletesMetadata(t *testing.T) {
	tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{})
	now := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	st, dest := newStore(t, statebackup.Options{Now: func() time.Time { now = now.Add(time.Hour); return now }})
	for i := 0; i < 3; i++ {
		_, err := st.Backup(bg, tg, "")
		require.NoError(t, err)
	}
	require.NoError(t, st.Prune(bg, tg, 1))
	files, _ := filepath.Glob(filepath.Join(dest, "emil", "*"))
	assert.Len(t, files, 2, "one snapshot and its metadata: %v", files)
}

func TestListSkipsSymlinksAndStrangers(t *testing.T) {
	st, dest := newStore(t, statebackup.Options{})
	dir := filepath.Join(dest, "emil")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	good := plant(t, dir, "daily", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	other := filepath.Join(t.TempDir(), "state-20260102-000000.sqlite")
	require.NoError(t, os.WriteFile(other, []byte("y"), 0o600))
	require.NoError(t, os.Symlink(other, filepath.Join(dir, "state-20260102-000000.sqlite")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "state-20260103-000000.sqlite.json"), []byte("{}"), 0o600))
	list, err := st.List(bg, statebackup.Target{User: "emil"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, good, filepath.Base(list[0].Path))
}

func TestLiveDB(t *testing.T) {
	old := time.Now().Add(-time.Hour)
	cases := []struct {
		name  string
		files map[string]time.Time
		want  string
	}{
		{"state only", map[string]time.Time{"state.sqlite": old}, "state.sqlite"},
		{"statev2 newer", map[string]time.Time{"state.sqlite": old, "statev2.sqlite": time.Now()}, "statev2.sqlite"},
		{"statev2 only", map[string]time.Time{"statev2.sqlite": old}, "statev2.sqlite"},
		{"statev2 stale after a rollback", map[string]time.Time{"state.sqlite": time.Now(), "statev2.sqlite": old}, "state.sqlite"},
		{"state newer by its WAL", map[string]time.Time{"state.sqlite": old.Add(-time.Hour), "state.sqlite-wal": time.Now(), "statev2.sqlite": old}, "state.sqlite"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, mt := range c.files {
				p := filepath.Join(dir, n)
				require.NoError(t, os.WriteFile(p, nil, 0o600))
				require.NoError(t, os.Chtimes(p, mt, mt))
			}
			got, err := statebackup.LiveDB(dir)
			require.NoError(t, err)
			assert.Equal(t, c.want, filepath.Base(got))
		})
	}
	_, err := statebackup.LiveDB(t.TempDir())
	assert.ErrorIs(t, err, statebackup.ErrNoDatabase)
}
