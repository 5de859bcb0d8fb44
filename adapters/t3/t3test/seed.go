package t3test

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Defaults for SeedOptions.
const (
	DefaultSeedThreads  = 3
	DefaultBulkRowBytes = 1024
)

// SeedOptions shapes the populated database SeedState makes. The zero value
// gives DefaultSeedThreads idle threads and no bulk data.
type SeedOptions struct {
	// Threads is how many threads (project, thread, session, one completed
	// turn and two messages each) to create; 0 means DefaultSeedThreads.
	Threads int
	// ActiveTurns is how many of those threads (the first ones) have a turn
	// running: active_turn_id set, or in era E a 'running' v2 run (each
	// thread there also has a completed one).
	ActiveTurns int
	// BulkRows adds that many orchestration_events rows of BulkRowBytes
	// payload each, to make a database of a chosen size.
	BulkRows int
	// BulkRowBytes is each bulk row's payload size; 0 means DefaultBulkRowBytes.
	BulkRowBytes int
	// Now stamps every row; zero means time.Now().
	Now time.Time
	// Workspace is the project's workspace root, where a serve continuing
	// a thread at start leaves ContinuedMarker; empty means /srv/workspace.
	Workspace string
}

// SeedThreadID is the id SeedState gives its i-th thread (0-based).
func SeedThreadID(i int) string { return fmt.Sprintf("thread-%04d", i) }

// SeedState migrates baseDir to era and fills its live database with threads
// and optional bulk rows, in one transaction. Seeding twice adds bulk rows and
// replaces the threads.
func SeedState(baseDir string, era Era, opts SeedOptions) error {
	ctx := context.Background()
	if err := Migrate(ctx, baseDir, era); err != nil {
		return fmt.Errorf("seed %s: %w", baseDir, err)
	}
	if opts.Threads <= 0 {
		opts.Threads = DefaultSeedThreads
	}
	if opts.BulkRowBytes <= 0 {
		opts.BulkRowBytes = DefaultBulkRowBytes
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	conn, err := openDB(liveDBFor(baseDir, era), era)
	if err != nil {
		return fmt.Errorf("seed %s: %w", baseDir, err)
	}
	defer conn.Close()
	conn.SetBusyTimeout(BusyTimeout) // a test helper: wait rather than fail
	if err := seed(conn, era, opts); err != nil {
		return fmt.Errorf("seed %s: %w", baseDir, err)
	}
	return nil
}

func seed(conn *sqlite.Conn, era Era, o SeedOptions) (err error) {
	end, err := sqlitex.ImmediateTransaction(conn)
	if err != nil {
		return err
	}
	defer end(&err)
	now := formatTime(o.Now)
	exec := func(q string, args ...any) error {
		return sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args})
	}
	v2, err := hasTable(conn, "orchestration_v2_projection_runs")
	if err != nil {
		return err
	}
	if err := exec(`INSERT OR REPLACE INTO projection_projects (project_id, title, workspace_root, created_at, updated_at)
		VALUES ('project-0001', 'workspace', ?, ?, ?)`, cmp.Or(o.Workspace, "/srv/workspace"), now, now); err != nil {
		return err
	}
	for i := 0; i < o.Threads; i++ {
		id := SeedThreadID(i)
		done := fmt.Sprintf("turn-%s-1", id)
		if err := exec(`INSERT OR REPLACE INTO projection_threads (thread_id, project_id, title, model, latest_turn_id, created_at, updated_at)
			VALUES (?, 'project-0001', ?, 'gpt-5-codex', ?, ?, ?)`, id, "Thread "+id, done, now, now); err != nil {
			return err
		}
		if err := exec(`INSERT OR REPLACE INTO projection_turns (thread_id, turn_id, state, requested_at, started_at, completed_at, checkpoint_turn_count)
			VALUES (?, ?, 'completed', ?, ?, ?, 1)`, id, done, now, now, now); err != nil {
			return err
		}
		for j, role := range []string{"user", "assistant"} {
			if err := exec(`INSERT OR REPLACE INTO projection_thread_messages (message_id, thread_id, turn_id, role, text, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, fmt.Sprintf("msg-%s-%d", id, j), id, done, role, "hello from "+role, now, now); err != nil {
				return err
			}
		}
		if err := exec(`INSERT OR REPLACE INTO projection_thread_sessions (thread_id, status, provider_name, provider_session_id, provider_thread_id, updated_at)
			VALUES (?, 'ready', 'codex', ?, ?, ?)`, id, "psess-"+id, "pthread-"+id, now); err != nil {
			return err
		}
		if v2 {
			if err := exec(`INSERT OR REPLACE INTO orchestration_v2_projection_runs (run_id, thread_id, ordinal, provider, provider_thread_id, status, requested_at, completed_at, payload_json)
				VALUES (?, ?, 1, 'codex', ?, 'completed', ?, ?, '{}')`, "run-"+done, id, "pthread-"+id, now, now); err != nil {
				return err
			}
		}
		if i < o.ActiveTurns {
			if err := setActive(conn, id, true, o.Now); err != nil {
				return err
			}
		}
	}
	if o.BulkRows > 0 {
		stmt := conn.Prep(`INSERT INTO orchestration_events (event_id, aggregate_kind, stream_id, stream_version, event_type, occurred_at, payload_json)
			VALUES (?, 'thread', ?, ?, 'thread.message-sent', ?, ?)`)
		var base int64
		if err := sqlitex.Execute(conn, `SELECT COALESCE(MAX(sequence), 0) FROM orchestration_events`,
			&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { base = s.ColumnInt64(0); return nil }}); err != nil {
			return err
		}
		payload := `{"text":"` + strings.Repeat("lorem ipsum ", o.BulkRowBytes/12+1)[:o.BulkRowBytes] + `"}`
		for i := 0; i < o.BulkRows; i++ {
			n := base + int64(i) + 1
			stmt.BindText(1, fmt.Sprintf("evt-%010d", n))
			stmt.BindText(2, SeedThreadID(i%o.Threads))
			stmt.BindInt64(3, n)
			stmt.BindText(4, now)
			stmt.BindText(5, payload)
			if _, err := stmt.Step(); err != nil {
				return err
			}
			if err := stmt.Reset(); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetActiveTurn marks a thread's turn as running (active) or finished in
// baseDir's live database, for idle-gate tests: projection_thread_sessions
// and projection_turns before era E, stamping updated_at; in era E, where
// those tables are the frozen copy the move made, an
// orchestration_v2_projection_runs row started (requested_at) or completed
// (completed_at) instead.
func SetActiveTurn(baseDir, threadID string, active bool, updatedAt time.Time) (err error) {
	conn, err := sqlite.OpenConn(LiveDB(baseDir), sqlite.OpenReadWrite|sqlite.OpenWAL)
	if err != nil {
		return fmt.Errorf("set active turn %s: %w", threadID, err)
	}
	defer conn.Close()
	conn.SetBusyTimeout(BusyTimeout)
	end, err := sqlitex.ImmediateTransaction(conn)
	if err != nil {
		return fmt.Errorf("set active turn %s: %w", threadID, err)
	}
	defer end(&err)
	if err := setActive(conn, threadID, active, updatedAt); err != nil {
		return fmt.Errorf("set active turn %s: %w", threadID, err)
	}
	return nil
}

func setActive(conn *sqlite.Conn, threadID string, active bool, at time.Time) error {
	ts := formatTime(at)
	exec := func(q string, args ...any) error {
		return sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args})
	}
	v2, err := hasTable(conn, "orchestration_v2_projection_runs")
	if err != nil {
		return err
	}
	if v2 {
		if active {
			return exec(`INSERT OR REPLACE INTO orchestration_v2_projection_runs (run_id, thread_id, ordinal, provider, provider_thread_id, status, requested_at, payload_json)
				VALUES (?, ?, (SELECT coalesce(max(ordinal), 0) + 1 FROM orchestration_v2_projection_runs WHERE thread_id = ?), 'codex', ?, 'running', ?, '{}')`,
				fmt.Sprintf("run-%s-%d", threadID, at.UnixMilli()), threadID, threadID, "pthread-"+threadID, ts)
		}
		return exec(`UPDATE orchestration_v2_projection_runs SET status = 'completed', completed_at = ?
			WHERE thread_id = ? AND status IN ('preparing','starting','running','waiting')`, ts, threadID)
	}
	if active {
		turn := fmt.Sprintf("turn-%s-%d", threadID, at.UnixMilli())
		if err := exec(`INSERT INTO projection_thread_sessions (thread_id, status, provider_name, active_turn_id, updated_at)
			VALUES (?, 'running', 'codex', ?, ?)
			ON CONFLICT (thread_id) DO UPDATE SET status = 'running', active_turn_id = excluded.active_turn_id, updated_at = excluded.updated_at`,
			threadID, turn, ts); err != nil {
			return err
		}
		return exec(`INSERT OR REPLACE INTO projection_turns (thread_id, turn_id, state, requested_at, started_at)
			VALUES (?, ?, 'running', ?, ?)`, threadID, turn, ts, ts)
	}
	if err := exec(`INSERT INTO projection_thread_sessions (thread_id, status, provider_name, active_turn_id, updated_at)
		VALUES (?, 'ready', 'codex', NULL, ?)
		ON CONFLICT (thread_id) DO UPDATE SET status = 'ready', active_turn_id = NULL, updated_at = excluded.updated_at`,
		threadID, ts); err != nil {
		return err
	}
	return exec(`UPDATE projection_turns SET state = 'completed', completed_at = ? WHERE thread_id = ? AND state = 'running'`, ts, threadID)
}

func hasTable(conn *sqlite.Conn, name string) (bool, error) {
	found := false
	err := sqlitex.Execute(conn, `SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?`,
		&sqlitex.ExecOptions{Args: []any{name}, ResultFunc: func(*sqlite.Stmt) error { found = true; return nil }})
	return found, err
}
