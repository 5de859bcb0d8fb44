package statebackup_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

// snapshotWithMarker seeds era, marks the live DB with old, snapshots it,
// then marks it new (so the live DB and the snapshot differ).
func snapshotWithMarker(t *testing.T, era t3test.Era, st *statebackup.Store, old, new int) (statebackup.Target, statebackup.Snapshot) {
	t.Helper()
	tg := mustSeed(t, "emil", era, t3test.SeedOptions{BulkRows: 200})
	live := mustLive(t, tg)
	setMarker(t, live, old)
	snap, err := st.Backup(bg, tg, statebackup.PrebumpLabel("0.0.99"))
	require.NoError(t, err)
	setMarker(t, live, new)
	return tg, snap
}

func TestRestoreEras(t *testing.T) {
	for _, era := range t3test.Eras() {
		t.Run(string(era), func(t *testing.T) {
			st, _ := newStore(t, statebackup.Options{})
			tg, snap := snapshotWithMarker(t, era, st, 1, 2)
			live := mustLive(t, tg)
			require.NoError(t, os.Chmod(live, 0o640))

			require.NoError(t, st.Restore(bg, tg, snap))
			assert.Equal(t, live, mustLive(t, tg), "restored onto the DB the snapshot came from")
			assert.Equal(t, 1, marker(t, live))
			assert.Equal(t, era.SchemaLevel(), query(t, live, `SELECT max(migration_id) FROM effect_sql_migrations`))
			fi, err := os.Stat(live)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), "mode preserved")
			entries, err := os.ReadDir(tg.UserdataDir)
			require.NoError(t, err)
			for _, e := range entries {
				assert.NotContains(t, e.Name(), ".restore-", "temp copy left")
				assert.NotContains(t, e.Name(), ".replaced-"+"", "replaced DB kept without KeepReplaced")
			}
		})
	}
}

func TestRestoreKeepReplaced(t *testing.T) {
	st, _ := newStore(t, statebackup.Options{KeepReplaced: true})
	tg, snap := snapshotWithMarker(t, t3test.EraC, st, 1, 2)
	require.NoError(t, st.Restore(bg, tg, snap))
	aside, _ := filepath.Glob(filepath.Join(tg.UserdataDir, statebackup.StateDB+".replaced-*"))
	require.Len(t, aside, 1)
	assert.Equal(t, 2, marker(t, aside[0]))
}

// A crash before the swap leaves the old database whole (main file and
// WAL); from the swap on, the new one. Either way the live name opens,
// passes the check and holds exactly one of the markers; a second restore
// then succeeds.
func TestRestoreCrashAtEachStep(t *testing.T) {
	const (
		inSnapshot = 3
		oldMain    = 1 // what the old main file says without its WAL
		oldWhole   = 2 // the old database, WAL applied
	)
	swap := slices.Index(statebackup.RestoreSteps(), statebackup.StepSwap)
	for _, era := range []t3test.Era{t3test.EraC, t3test.EraE} {
		for i, step := range statebackup.RestoreSteps() {
			t.Run(string(era)+"/"+string(step), func(t *testing.T) {
				hook, crash := crashAt(step)
				st, dest := newStore(t, statebackup.Options{BeforeRestoreStep: hook})
				tg, snap := snapshotWithMarker(t, era, st, inSnapshot, oldMain)
				tg = killedServerImage(t, tg, oldWhole)
				live := mustLive(t, tg)
				_, err := os.Stat(live + "-wal")
				require.NoError(t, err, "the image must carry a WAL")

				err = st.Restore(bg, tg, snap)
				require.ErrorIs(t, err, crash)

				want := oldWhole
				if i > swap { // crashed after the swap: the new DB is live
					want = inSnapshot
				}
				assert.Equal(t, want, marker(t, live))
				assert.Equal(t, "ok", quickCheck(t, live))

				// Recovery: a plain restore afterwards works.
				st2 := statebackup.NewStore(dest, statebackup.Options{})
				require.NoError(t, st2.Restore(bg, tg, snap))
				assert.Equal(t, inSnapshot, marker(t, live))
				left, _ := filepath.Glob(filepath.Join(tg.UserdataDir, ".*.restore-*"))
				assert.Empty(t, left)
			})
		}
	}
}

// killedServerImage writes marker v so that it lives only in the WAL (a
// second connection keeps the last close from checkpointing), then copies
// the userdata files, WAL included and -shm left out, to a new directory: what
// a server killed mid-work leaves on disk.
func killedServerImage(t *testing.T, tg statebackup.Target, v int) statebackup.Target {
	t.Helper()
	live := mustLive(t, tg)
	holder, err := sqlite.OpenConn(live, sqlite.OpenReadWrite)
	require.NoError(t, err)
	require.NoError(t, sqlitex.ExecuteTransient(holder, "PRAGMA wal_autocheckpoint=0", nil))
	require.NoError(t, sqlitex.ExecuteTransient(holder, "SELECT count(*) FROM t3fleet_marker", nil))
	setMarker(t, live, v)
	dir := filepath.Join(t.TempDir(), "image", "userdata")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	entries, err := os.ReadDir(tg.UserdataDir)
	require.NoError(t, err)
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), "-shm") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(tg.UserdataDir, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
	}
	require.NoError(t, holder.Close())
	tg.UserdataDir = dir
	return tg
}

func quickCheck(t *testing.T, path string) string {
	t.Helper()
	n := query(t, path, `SELECT count(*) FROM pragma_quick_check WHERE quick_check = 'ok'`)
	if n == 1 {
		return "ok"
	}
	return "failed"
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(t *testing.T, snap *statebackup.Snapshot)
		want  error
	}{
		{"checksum mismatch", func(t *testing.T, s *statebackup.Snapshot) {
			s.SHA256 = strings.Repeat("0", 64)
		}, statebackup.ErrChecksum},
		{"bytes changed on disk", func(t *testing.T, s *statebackup.Snapshot) {
			b, err := os.ReadFile(s.Path)
			require.NoError(t, err)
			b[len(b)-100] ^= 0xff
			require.NoError(t, os.WriteFile(s.Path, b, 0o600))
		}, statebackup.ErrChecksum},
		{"corrupt without metadata", func(t *testing.T, s *statebackup.Snapshot) {
			b, err := os.ReadFile(s.Path)
			require.NoError(t, err)
			for i := 4096; i < len(b); i += 5 {
				b[i] ^= 0x5a
			}
			require.NoError(t, os.WriteFile(s.Path, b, 0o600))
			require.NoError(t, os.Remove(s.Path+statebackup.MetadataSuffix))
			s.SHA256 = ""
		}, statebackup.ErrCheckFailed},
		{"zero bytes without metadata", func(t *testing.T, s *statebackup.Snapshot) {
			require.NoError(t, os.WriteFile(s.Path, nil, 0o600))
			require.NoError(t, os.Remove(s.Path+statebackup.MetadataSuffix))
			s.SHA256 = ""
		}, statebackup.ErrCheckFailed},
		{"not sqlite without metadata", func(t *testing.T, s *statebackup.Snapshot) {
			require.NoError(t, os.WriteFile(s.Path, []byte(strings.Repeat("nope ", 2000)), 0o600))
			require.NoError(t, os.Remove(s.Path+statebackup.MetadataSuffix))
			s.SHA256 = ""
		}, statebackup.ErrCheckFailed},
		{"symlink", func(t *testing.T, s *statebackup.Snapshot) {
			link := s.Path + ".link"
			require.NoError(t, os.Symlink(s.Path, link))
			s.Path = link
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, _ := newStore(t, statebackup.Options{})
			tg, snap := snapshotWithMarker(t, t3test.EraD, st, 1, 2)
			c.spoil(t, &snap)
			err := st.Restore(bg, tg, snap)
			require.Error(t, err)
			if c.want != nil {
				assert.ErrorIs(t, err, c.want)
			}
			assert.Equal(t, 2, marker(t, mustLive(t, tg)), "live DB untouched")
			left, _ := filepath.Glob(filepath.Join(tg.UserdataDir, ".*.restore-*"))
			assert.Empty(t, left)
		})
	}
}

// A writer holding a transaction open on the old database (a server that
// was not stopped, mid-write) makes the checkpoint busy: the restore stops
// there and the live database keeps its data.
func TestRestoreRefusesWhileInUse(t *testing.T) {
	st, _ := newStore(t, statebackup.Options{BusyTimeout: 50e6})
	tg, snap := snapshotWithMarker(t, t3test.EraC, st, 1, 2)
	live := mustLive(t, tg)
	c, err := sqlite.OpenConn(live, sqlite.OpenReadWrite)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, sqlitex.ExecuteTransient(c, "BEGIN IMMEDIATE", nil))
	require.NoError(t, sqlitex.ExecuteTransient(c, `INSERT INTO orchestration_events (event_id, aggregate_kind, stream_id, stream_version, event_type, occurred_at, payload_json)
		VALUES ('held', 'thread', 'thread-0000', 999999, 'thread.message-sent', '2026-09-06T00:00:00.000Z', '{}')`, nil))

	err = st.Restore(bg, tg, snap)
	assert.ErrorIs(t, err, statebackup.ErrBusy)
	require.NoError(t, sqlitex.ExecuteTransient(c, "ROLLBACK", nil))
	assert.Equal(t, 2, marker(t, live), "the live database is untouched")
}

// An old snapshot (seed layout, no metadata) still lists and restores.
func TestOldSnapshotWithoutMetadata(t *testing.T) {
	st, dest := newStore(t, statebackup.Options{})
	tg, snap := snapshotWithMarker(t, t3test.EraA, st, 1, 2)
	old := filepath.Join(dest, "emil", "state-20250101-010203.sqlite")
	require.NoError(t, os.Rename(snap.Path, old))
	require.NoError(t, os.Remove(snap.Path+statebackup.MetadataSuffix))

	list, err := st.List(bg, tg)
	require.NoError(t, err)
	require.Len(t, list, 1)
	got := list[0]
	assert.Equal(t, "daily", got.Label)
	assert.False(t, got.Verified)
	assert.Equal(t, "2025-01-01T01:02:03Z", got.Time.Format("2006-01-02T15:04:05Z07:00"))
	require.NoError(t, st.Restore(bg, tg, got))
	assert.Equal(t, 1, marker(t, mustLive(t, tg)))
}

// Restoring a state.sqlite snapshot over an era-E layout retires the
// statev2.sqlite it predates, so the restored file is the live one.
func TestRestoreStateOverStateV2(t *testing.T) {
	st, _ := newStore(t, statebackup.Options{})
	tg, snap := snapshotWithMarker(t, t3test.EraD, st, 1, 2)
	base := filepath.Dir(tg.UserdataDir)
	require.NoError(t, t3test.Migrate(bg, base, t3test.EraE))
	assert.Equal(t, statebackup.StateV2DB, filepath.Base(mustLive(t, tg)))

	require.NoError(t, st.Restore(bg, tg, snap))
	live := mustLive(t, tg)
	assert.Equal(t, statebackup.StateDB, filepath.Base(live))
	assert.Equal(t, 1, marker(t, live))
	assert.Equal(t, 32, query(t, live, `SELECT max(migration_id) FROM effect_sql_migrations`))
}

// The restore's temporary copy sits in the user's own userdata directory,
// where the user can rename things. Its mode (and owner, as root) must be
// set on the open file, never by path: a symlink swapped in under the
// temporary name must not make the restore change its target's mode (as
// root: chmod 0666 /etc/shadow). An attacker loop swaps as fast as it can.
func TestRestoreSetsModeOnTheFileNotThePath(t *testing.T) {
	st, _ := newStore(t, statebackup.Options{})
	tg, snap := snapshotWithMarker(t, t3test.EraC, st, 1, 2)
	live := mustLive(t, tg)
	require.NoError(t, os.Chmod(live, 0o666))
	victim := filepath.Join(t.TempDir(), "shadow")
	require.NoError(t, os.WriteFile(victim, []byte("root:x"), 0o600))

	var swaps atomic.Int64 // symlinks that landed under a temporary name
	// Twenty rounds, and more until a swap has landed (on one CPU the
	// attacker may not get a turn in twenty).
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; round < 20 || swaps.Load() == 0 && time.Now().Before(deadline); round++ {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				tmps, _ := filepath.Glob(filepath.Join(tg.UserdataDir, ".*.restore-*"))
				for _, tmp := range tmps {
					if strings.HasSuffix(tmp, "-wal") || strings.HasSuffix(tmp, "-shm") {
						continue
					}
					link := tmp + ".evil"
					if os.Symlink(victim, link) == nil && os.Rename(link, tmp) == nil {
						swaps.Add(1)
					}
				}
			}
		}()
		_ = st.Restore(bg, tg, snap) // fails when the swap lands; never harms the victim
		close(stop)
		<-done
		fi, err := os.Stat(victim)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "round %d: the restore changed the mode of a file a symlink pointed at", round)
	}
	require.Positive(t, swaps.Load(), "no swap ever landed: the race was not run")
}

// crashAt returns a BeforeRestoreStep hook that stands for a crash before
// step, and the error it fails that step with.
func crashAt(step statebackup.RestoreStep) (hook func(statebackup.RestoreStep) error, crash error) {
	crash = errors.New("crash before " + string(step))
	return func(s statebackup.RestoreStep) error {
		if s == step {
			return crash
		}
		return nil
	}, crash
}
