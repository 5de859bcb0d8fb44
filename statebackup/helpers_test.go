package statebackup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

// mustSeed makes a populated t3 state of era under a new base dir and
// returns the Target for user.
func mustSeed(tb testing.TB, user string, era t3test.Era, opts t3test.SeedOptions) statebackup.Target {
	tb.Helper()
	base := filepath.Join(tb.TempDir(), user, ".t3")
	require.NoError(tb, os.MkdirAll(base, 0o755))
	require.NoError(tb, t3test.SeedState(base, era, opts))
	return statebackup.Target{User: user, UserdataDir: t3test.UserDataDir(base), Version: t3test.DefaultVersion(era)}
}

func mustLive(tb testing.TB, t statebackup.Target) string {
	tb.Helper()
	p, err := statebackup.LiveDB(t.UserdataDir)
	require.NoError(tb, err)
	return p
}

// query returns the single integer a query yields on the database at path.
func query(tb testing.TB, path, q string) int {
	tb.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	require.NoError(tb, err)
	defer c.Close()
	var n int
	require.NoError(tb, sqlitex.ExecuteTransient(c, q, &sqlitex.ExecOptions{
		ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil }}))
	return n
}

// setMarker writes a recognisable value into the live database: a row in
// projection_state (present in every era).
func setMarker(tb testing.TB, path string, v int) {
	tb.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate|sqlite.OpenWAL)
	require.NoError(tb, err)
	defer c.Close()
	c.SetBusyTimeout(5 * time.Second)
	require.NoError(tb, sqlitex.ExecuteTransient(c,
		`CREATE TABLE IF NOT EXISTS t3fleet_marker (v INTEGER NOT NULL)`, nil))
	require.NoError(tb, sqlitex.ExecuteTransient(c, `DELETE FROM t3fleet_marker`, nil))
	require.NoError(tb, sqlitex.ExecuteTransient(c, `INSERT INTO t3fleet_marker (v) VALUES (?)`,
		&sqlitex.ExecOptions{Args: []any{v}}))
}

func marker(tb testing.TB, path string) int {
	return query(tb, path, `SELECT v FROM t3fleet_marker`)
}

// writer inserts rows into the live database until stopped, the way a
// running t3 keeps appending orchestration events.
type writer struct {
	mu       sync.Mutex
	n        int
	maxStall time.Duration
	err      error
	stop     chan struct{}
	done     chan struct{}
}

func startWriter(tb testing.TB, path string) *writer {
	tb.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	require.NoError(tb, err)
	c.SetBusyTimeout(5 * time.Second)
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer c.Close()
		stmt := c.Prep(`INSERT INTO orchestration_events (event_id, aggregate_kind, stream_id, stream_version, event_type, occurred_at, payload_json)
			VALUES (?, 'thread', 'thread-0000', ?, 'thread.message-sent', '2026-09-06T00:00:00.000Z', '{"text":"w"}')`)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			start := time.Now()
			stmt.BindText(1, fmt.Sprintf("w-%d-%d", time.Now().UnixNano(), i))
			stmt.BindInt64(2, int64(1_000_000+i))
			_, err := stmt.Step()
			if err == nil {
				err = stmt.Reset()
			}
			took := time.Since(start)
			w.mu.Lock()
			if err != nil && w.err == nil {
				w.err = err
			}
			if err == nil {
				w.n++
			}
			if took > w.maxStall {
				w.maxStall = took
			}
			w.mu.Unlock()
			if err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	tb.Cleanup(func() { w.Stop() })
	return w
}

// Stop ends the writer and returns how many rows it wrote, its longest
// insert and its first error.
func (w *writer) Stop() (int, time.Duration, error) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.maxStall, w.err
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %s", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newStore(tb testing.TB, opts statebackup.Options) (*statebackup.Store, string) {
	dest := filepath.Join(tb.TempDir(), "backups")
	return statebackup.NewStore(dest, opts), dest
}

var bg = context.Background()
