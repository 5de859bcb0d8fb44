package statebackup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

func TestBackupEras(t *testing.T) {
	for _, era := range t3test.Eras() {
		for _, method := range []statebackup.Method{statebackup.MethodBackupAPI, statebackup.MethodVacuumInto} {
			t.Run(string(era)+"/"+method.String(), func(t *testing.T) { testBackupEra(t, era, method) })
		}
	}
}

func testBackupEra(t *testing.T, era t3test.Era, method statebackup.Method) {
	tg := mustSeed(t, "emil", era, t3test.SeedOptions{Threads: 5, BulkRows: 50})
	st, dest := newStore(t, statebackup.Options{Method: method})
	snap, err := st.Backup(bg, tg, "")
	require.NoError(t, err)

	wantSource := statebackup.StateDB
	if era.UsesStateV2() {
		wantSource = statebackup.StateV2DB
	}
	assert.Equal(t, wantSource, snap.Source)
	assert.Equal(t, era.SchemaLevel(), snap.SchemaLevel)
	assert.Equal(t, "daily", snap.Label)
	assert.Equal(t, tg.Version, snap.Version)
	assert.True(t, snap.Verified)
	assert.Regexp(t, `^state-\d{8}-\d{6}\.sqlite$`, filepath.Base(snap.Path))
	assert.Equal(t, filepath.Join(dest, "emil"), filepath.Dir(snap.Path))
	assert.Len(t, snap.SHA256, 64)
	assert.Equal(t, 5, query(t, snap.Path, `SELECT count(*) FROM projection_thread_sessions`))
	assert.Equal(t, 50, query(t, snap.Path, `SELECT count(*) FROM orchestration_events`))

	fi, err := os.Stat(snap.Path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	assert.Equal(t, snap.Size, fi.Size())
	di, err := os.Stat(filepath.Dir(snap.Path))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	mi, err := os.Stat(snap.Path + statebackup.MetadataSuffix)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), mi.Mode().Perm())

	list, err := st.List(bg, tg)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, snap, list[0])

	// Nothing but the snapshot, its metadata and the user dir.
	entries, err := os.ReadDir(dest)
	require.NoError(t, err)
	require.Len(t, entries, 1, "staging left behind")
	// A rollback-journal file (header bytes 18-19 = 1), so opening
	// it leaves no -wal/-shm in the backup directory.
	b, err := os.ReadFile(snap.Path)
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 1}, b[18:20], "journal mode of the snapshot")
}

func TestBackupPrebumpLabelAndName(t *testing.T) {
	tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{})
	now := time.Date(2026, 9, 6, 3, 4, 5, 0, time.UTC)
	st, _ := newStore(t, statebackup.Options{Now: func() time.Time { return now }})
	a, err := st.Backup(bg, tg, statebackup.PrebumpLabel("0.0.28-nightly.20260616.571"))
	require.NoError(t, err)
	assert.Equal(t, "state-prebump-0.0.28-nightly.20260616.571-20260906-030405.sqlite", filepath.Base(a.Path))
	b, err := st.Backup(bg, tg, statebackup.PrebumpLabel("0.0.28-nightly.20260616.571"))
	require.NoError(t, err)
	assert.Equal(t, "state-prebump-0.0.28-nightly.20260616.571-20260906-030405.1.sqlite", filepath.Base(b.Path))
	list, err := st.List(bg, tg)
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, s := range list {
		assert.Equal(t, "prebump-0.0.28-nightly.20260616.571", s.Label)
	}
}

func TestBackupUnderWriter(t *testing.T) {
	for _, era := range []t3test.Era{t3test.EraB, t3test.EraE} {
		t.Run(string(era), func(t *testing.T) {
			tg := mustSeed(t, "emil", era, t3test.SeedOptions{BulkRows: 3000})
			live := mustLive(t, tg)
			w := startWriter(t, live)
			waitFor(t, 10*time.Second, func() bool { return w.count() > 20 })
			st, _ := newStore(t, statebackup.Options{IntegrityCheck: true})
			stv, _ := newStore(t, statebackup.Options{Method: statebackup.MethodVacuumInto})
			for i := 0; i < 4; i++ {
				st := st
				if i%2 == 1 {
					st = stv
				}
				before := w.count()
				snap, err := st.Backup(bg, tg, statebackup.LabelManual)
				require.NoError(t, err)
				assert.True(t, snap.Verified)
				got := query(t, snap.Path, `SELECT count(*) FROM orchestration_events`)
				assert.GreaterOrEqual(t, got, 3000+before)
			}
			waitFor(t, 10*time.Second, func() bool { return w.count() > 40 })
			n, _, err := w.Stop()
			require.NoError(t, err, "the writer must never fail while snapshots run")
			assert.Greater(t, n, 40)
			assert.Equal(t, 3000+n, query(t, live, `SELECT count(*) FROM orchestration_events`))
		})
	}
}

func TestBackupBadInputs(t *testing.T) {
	cases := []struct {
		name    string
		content []byte
		want    error
	}{
		{"zero-byte file", []byte{}, statebackup.ErrCheckFailed},
		{"not sqlite", []byte(strings.Repeat("this is not a database\n", 400)), nil},
		{"corrupt", nil, nil}, // built below from a real DB
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "userdata")
			require.NoError(t, os.MkdirAll(dir, 0o755))
			db := filepath.Join(dir, statebackup.StateDB)
			content := c.content
			if content == nil {
				tg := mustSeed(t, "x", t3test.EraC, t3test.SeedOptions{BulkRows: 400})
				b, err := os.ReadFile(mustLive(t, tg))
				require.NoError(t, err)
				for i := 4096; i < len(b); i += 7 {
					b[i] ^= 0x5a // scramble every page after the first
				}
				content = b
			}
			require.NoError(t, os.WriteFile(db, content, 0o600))
			st, dest := newStore(t, statebackup.Options{})
			_, err := st.Backup(bg, statebackup.Target{User: "emil", UserdataDir: dir}, "")
			require.Error(t, err)
			if c.want != nil {
				assert.ErrorIs(t, err, c.want)
			}
			list, err := st.List(bg, statebackup.Target{User: "emil"})
			require.NoError(t, err)
			assert.Empty(t, list, "a failed snapshot is never listed")
			left, _ := filepath.Glob(filepath.Join(dest, "*", "*"))
			assert.Empty(t, left, "a failed snapshot is deleted")
			staging, _ := filepath.Glob(filepath.Join(dest, ".staging-*"))
			assert.Empty(t, staging)
		})
	}
}

func TestBackupMissingTablesHasSchemaZero(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "userdata")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	db := filepath.Join(dir, statebackup.StateDB)
	setMarker(t, db, 7) // a database, but none of t3's tables
	st, _ := newStore(t, statebackup.Options{})
	snap, err := st.Backup(bg, statebackup.Target{User: "emil", UserdataDir: dir}, "")
	require.NoError(t, err)
	assert.Equal(t, 0, snap.SchemaLevel)
	assert.Equal(t, 7, marker(t, snap.Path))
}

func TestBackupNoDatabase(t *testing.T) {
	st, _ := newStore(t, statebackup.Options{})
	_, err := st.Backup(bg, statebackup.Target{User: "emil", UserdataDir: t.TempDir()}, "")
	assert.ErrorIs(t, err, statebackup.ErrNoDatabase)
}

func TestBackupRejectsBadNames(t *testing.T) {
	tg := mustSeed(t, "emil", t3test.EraA, t3test.SeedOptions{})
	st, dest := newStore(t, statebackup.Options{})
	for _, u := range []string{"../emil", "a/b", "..", "", "/etc", "Emil"} {
		bad := tg
		bad.User = u
		_, err := st.Backup(bg, bad, "")
		assert.ErrorIs(t, err, t3fleet.ErrInvalidName, "user %q", u)
		_, err = st.List(bg, bad)
		assert.ErrorIs(t, err, t3fleet.ErrInvalidName, "user %q", u)
		err = st.Restore(bg, bad, statebackup.Snapshot{Path: "/dev/null"})
		assert.ErrorIs(t, err, t3fleet.ErrInvalidName, "user %q", u)
	}
	for _, l := range []string{"../x", "prebump-../../x", "prebump-a/b", "Daily", "prebump-"} {
		_, err := st.Backup(bg, tg, l)
		assert.ErrorIs(t, err, statebackup.ErrInvalidLabel, "label %q", l)
	}
	// Names are refused before anything is created: not dest, nor a
	// directory beside it that "../emil" would name.
	left, err := os.ReadDir(filepath.Dir(dest))
	require.NoError(t, err)
	assert.Empty(t, left, "nothing created for a refused name")
}

func TestBackupDoesNotFollowPlantedSymlink(t *testing.T) {
	tg := mustSeed(t, "emil", t3test.EraD, t3test.SeedOptions{})
	st, dest := newStore(t, statebackup.Options{})
	other := filepath.Join(dest, "mallory")
	require.NoError(t, os.MkdirAll(other, 0o700))
	require.NoError(t, os.Symlink(other, filepath.Join(dest, "emil")))

	_, err := st.Backup(bg, tg, "")
	assert.ErrorIs(t, err, statebackup.ErrUnsafePath)
	entries, err := os.ReadDir(other)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing written into the other user's directory")
	_, err = st.List(bg, tg)
	assert.ErrorIs(t, err, statebackup.ErrUnsafePath)
}

func TestBackupRefusesSymlinkedLiveDB(t *testing.T) {
	tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{})
	secret := mustSeed(t, "root", t3test.EraC, t3test.SeedOptions{})
	live := filepath.Join(tg.UserdataDir, statebackup.StateDB)
	require.NoError(t, os.Remove(live))
	require.NoError(t, os.Symlink(mustLive(t, secret), live))
	st, _ := newStore(t, statebackup.Options{})
	_, err := st.Backup(bg, tg, "")
	assert.ErrorIs(t, err, statebackup.ErrUnsafePath)
}

func TestBackupTimeout(t *testing.T) {
	tg := mustSeed(t, "emil", t3test.EraC, t3test.SeedOptions{})
	st, _ := newStore(t, statebackup.Options{})
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err := st.Backup(ctx, tg, "")
	assert.ErrorIs(t, err, context.Canceled)
	list, err := st.List(bg, tg)
	require.NoError(t, err)
	assert.Empty(t, list)
}
