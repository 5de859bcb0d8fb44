package t3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/statebackup"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// copySeed copies the snapshot (and a -wal beside it, if any) to dst and
// returns the snapshot's owner. The seed lies in a snapshot directory its
// user owns: a symlink (to a database not theirs) or anything but a
// regular file is refused (statebackup.ErrUnsafePath), and a FIFO is
// opened without blocking.
func copySeed(seed, dst string) (statebackup.Owner, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return statebackup.Owner{}, fmt.Errorf("scratch: %w", err)
	}
	owner, err := copyFile(seed, dst)
	if err != nil {
		return statebackup.Owner{}, fmt.Errorf("copy seed: %w", err)
	}
	if _, err := copyFile(seed+"-wal", dst+"-wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return statebackup.Owner{}, fmt.Errorf("copy seed: %w", err)
	}
	return owner, nil
}

// copyFile copies src to dst and returns the owner of the file it read.
func copyFile(src, dst string) (statebackup.Owner, error) {
	none := statebackup.Owner{UID: -1, GID: -1}
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return none, fmt.Errorf("%s: %w: a symlink (refused, never followed)", src, statebackup.ErrUnsafePath)
	}
	if err != nil {
		return none, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return none, err
	} else if !fi.Mode().IsRegular() {
		return none, fmt.Errorf("%s: %w: not a regular file (%s)", src, statebackup.ErrUnsafePath, fi.Mode().Type())
	}
	owner := statebackup.OwnerOf(fi)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return none, err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return none, err
	}
	return owner, out.Close()
}

// quiesceCopy keeps the scratch serve from taking up the seed's work. The
// snapshot is taken whatever the user was doing, and t3 continues at start
// the threads whose turn or run was in flight (on by default), which starts
// their provider in the user's real workspace, as the build's user. So
// the copy gets a settings.json that turns that off, and whatever the idle
// gate would count as in flight in it is marked ended: thread sessions'
// active turns, turns and statev2 runs in any state but an end state (a
// copy: the seed is untouched). The database is the user's, triggers
// included, which the updates fire as root: it runs until ctx ends.
func quiesceCopy(ctx context.Context, userdata string) error {
	settings := []byte(`{"continueThreadsAfterServerUpdate":false}` + "\n")
	if err := os.WriteFile(filepath.Join(userdata, "settings.json"), settings, 0o600); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	c, err := sqlite.OpenConn(filepath.Join(userdata, "state.sqlite"), sqlite.OpenReadWrite)
	if err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	defer c.Close()
	c.SetInterrupt(ctx.Done())
	cols := map[string]bool{} // "table.column" of the ones quiesced
	err = sqlitex.ExecuteTransient(c, `SELECT m.name || '.' || p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name IN ('projection_thread_sessions', 'projection_turns', 'orchestration_v2_projection_runs')`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { cols[s.ColumnText(0)] = true; return nil }})
	if err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	ended := "('" + strings.Join(idlegate.EndRunStatuses(), "','") + "')"
	for col, q := range map[string]string{
		"projection_thread_sessions.active_turn_id": `UPDATE projection_thread_sessions SET active_turn_id = NULL WHERE active_turn_id IS NOT NULL`,
		"projection_turns.state":                    `UPDATE projection_turns SET state = 'interrupted' WHERE state NOT IN ` + ended,
		"orchestration_v2_projection_runs.status":   `UPDATE orchestration_v2_projection_runs SET status = 'interrupted' WHERE status NOT IN ` + ended,
	} {
		if cols[col] {
			if err := sqlitex.ExecuteTransient(c, q, nil); err != nil {
				return fmt.Errorf("scratch: quiesce %s: %w", col, err)
			}
		}
	}
	return nil
}
