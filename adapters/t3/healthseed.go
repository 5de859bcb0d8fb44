package t3

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

func copySeed(seed, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	if err := copyFile(seed, dst); err != nil {
		return fmt.Errorf("copy seed: %w", err)
	}
	if _, err := os.Stat(seed + "-wal"); err == nil {
		if err := copyFile(seed+"-wal", dst+"-wal"); err != nil {
			return fmt.Errorf("copy seed: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// quiesceCopy keeps the scratch serve from taking up the seed's work. The
// snapshot is taken whatever the user was doing, and t3 continues at start
// the threads whose turn or run was in flight (on by default), which starts
// their provider in the user's real workspace, as the updater's user. So
// the copy gets a settings.json that turns that off, and its turns and runs
// in flight are marked as ended (a copy: the seed is untouched).
func quiesceCopy(userdata string) error {
	settings := []byte(`{"continueThreadsAfterServerUpdate":false}` + "\n")
	if err := os.WriteFile(filepath.Join(userdata, "settings.json"), settings, 0o600); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	c, err := sqlite.OpenConn(filepath.Join(userdata, "state.sqlite"), sqlite.OpenReadWrite)
	if err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	defer c.Close()
	tables := map[string]bool{}
	err = sqlitex.ExecuteTransient(c, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name IN ('projection_thread_sessions', 'orchestration_v2_projection_runs')`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { tables[s.ColumnText(0)] = true; return nil }})
	if err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	for table, q := range map[string]string{
		"projection_thread_sessions":       `UPDATE projection_thread_sessions SET active_turn_id = NULL WHERE active_turn_id IS NOT NULL`,
		"orchestration_v2_projection_runs": `UPDATE orchestration_v2_projection_runs SET status = 'interrupted' WHERE status IN ('queued','preparing','starting','running','waiting')`,
	} {
		if tables[table] {
			if err := sqlitex.ExecuteTransient(c, q, nil); err != nil {
				return fmt.Errorf("scratch: quiesce %s: %w", table, err)
			}
		}
	}
	return nil
}
