package statebackup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// RestoreStep names one step of Restore, in order.
type RestoreStep string

// The steps of Restore. A crash before StepSwap leaves the old database
// whole under the live name; from StepSwap on, the new one.
const (
	// StepCopy copies the snapshot to a temporary name beside the live DB.
	StepCopy RestoreStep = "copy"
	// StepVerify compares the copy's sha256 with the recorded one and runs
	// the integrity check on it.
	StepVerify RestoreStep = "verify"
	// StepCheckpoint folds the old database's WAL into its main file, so the
	// main file alone is whole. A writer holding a transaction open (a server
	// not stopped, mid-write) makes it busy and stops the restore here; a
	// server that merely holds the file open is not detected: stopping the
	// instance is the caller's job.
	StepCheckpoint RestoreStep = "checkpoint"
	// StepSetAside hard-links the old database to <name>.replaced-<ts> and
	// moves its -wal/-shm/-journal there, so no stale WAL meets the new file.
	StepSetAside RestoreStep = "set-aside"
	// StepSwap renames the verified copy onto the live name (atomic) and
	// fsyncs the directory.
	StepSwap RestoreStep = "swap"
	// StepCleanup deletes the set-aside database, and those restores killed
	// before this step left (unless KeepReplaced), and retires a
	// statev2.sqlite that a restored state.sqlite predates.
	StepCleanup RestoreStep = "cleanup"
)

// RestoreSteps returns the steps in the order Restore runs them.
func RestoreSteps() []RestoreStep {
	return []RestoreStep{StepCopy, StepVerify, StepCheckpoint, StepSetAside, StepSwap, StepCleanup}
}

const (
	restoreTmpInfix = ".restore-"
	// asideInfix names a database a restore replaced, deleted once it is
	// done (unless KeepReplaced); retiredInfix a statev2.sqlite it retired,
	// always kept.
	asideInfix   = ".replaced-"
	retiredInfix = ".retired-"
)

// Restore puts snapshot snap back as t's live database. The caller has
// stopped the instance. The snapshot is copied beside the live database,
// checked against its recorded sha256 and with the integrity check, given
// the live file's owner and mode, and renamed onto the live name; the old
// database is kept aside until then. It restores onto the database the
// snapshot was taken from (snap.Source; state.sqlite when unknown), and
// refuses another user's snapshot (ErrNoSnapshot). Its errors are a
// *RestoreError naming the user and the snapshot.
func (s *Store) Restore(ctx context.Context, t Target, snap Snapshot) (err error) {
	defer func() {
		if err != nil {
			err = &RestoreError{User: t.User, Snapshot: snap.Path, Err: err}
		}
	}()
	if _, err := s.UserDir(t.User); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	step := func(st RestoreStep) error {
		// Once swapped, the restore is done: the cleanup (file renames and
		// removals, quick) runs to the end whatever the context says.
		if err := ctx.Err(); err != nil && st != StepCleanup {
			return err
		}
		if s.opts.BeforeRestoreStep != nil {
			if err := s.opts.BeforeRestoreStep(st); err != nil {
				return fmt.Errorf("step %s: %w", st, err)
			}
		}
		return nil
	}

	liveName := StateDB
	if snap.Source == StateV2DB {
		liveName = StateV2DB
	}
	dir := t.UserdataDir
	// Every file operation below goes through ud, the user's directory
	// opened once: the user can swap ~/.t3 for a symlink to another user's
	// tree between two steps, and a path would then set aside, replace or
	// retire that user's database. SQLite opens by path, refusing symlinks.
	ud, err := openDir(dir)
	if err != nil {
		return err
	}
	defer ud.Close()
	live := filepath.Join(dir, liveName)
	fi, err := ud.Lstat(liveName)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fi, err = ud.Stat(".")
		if err != nil {
			return err
		}
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: %w: not a regular file", live, ErrUnsafePath)
	}
	owner, mode := OwnerOf(fi), fi.Mode().Perm()
	if fi.IsDir() {
		mode = 0o600
	}
	removeStaleRestoreTemps(ud, liveName)

	if snap.SHA256 == "" || snap.User == "" {
		if m, ok, err := readMetadata(snap.Path); err == nil && ok {
			snap.SHA256 = cmp.Or(snap.SHA256, m.SHA256)
			snap.User = cmp.Or(snap.User, m.User)
		}
	}
	if err := s.ownSnapshot(t.User, snap); err != nil {
		return err
	}
	stamp := s.now().UTC().Format(TimeLayout)
	tmpName := "." + liveName + restoreTmpInfix + stamp
	tmp := filepath.Join(dir, tmpName)
	keepTmp := false
	defer func() {
		if !keepTmp {
			ud.Remove(tmpName)
			removeSidecars(ud, tmpName)
		}
	}()

	if err := step(StepCopy); err != nil {
		keepTmp = true
		return err
	}
	// Mode and owner are set on the open copy. The size recorded with the
	// checksum is checked before the copy: the user can inflate their
	// snapshot (sparse, for free) and the checksum is compared only after.
	var wantSize int64
	if snap.SHA256 != "" {
		wantSize = snap.Size
	}
	sum, _, err := copyFile(snap.Path, ud, tmpName, owner, mode, wantSize)
	if err != nil {
		return err
	}

	if err := step(StepVerify); err != nil {
		keepTmp = true
		return err
	}
	if snap.SHA256 != "" && !strings.EqualFold(sum, snap.SHA256) {
		return &ChecksumError{Path: snap.Path, Want: snap.SHA256, Got: sum}
	}
	// The copy is opened by path in the user's directory: with the owner's
	// rights, as the checkpoint below, so a swapped ~/.t3 cannot have root
	// open a file of that name in another user's tree.
	if err := AsOwner(owner, func() error {
		_, err := checkDB(ctx, tmp, s.opts.IntegrityCheck, false, s.busyTimeout())
		return err
	}); err != nil {
		return err
	}
	if err := removeSidecars(ud, tmpName); err != nil {
		return err
	}
	if err := syncFile(ud, tmpName); err != nil {
		return err
	}

	if err := step(StepCheckpoint); err != nil {
		keepTmp = true
		return err
	}
	if err := s.checkpoint(ctx, ud, live, owner); err != nil {
		if errors.Is(err, ErrBusy) || ctx.Err() != nil {
			return fmt.Errorf("old database still in use (is the instance stopped?): %w", err)
		}
		s.logger().Warn("checkpoint of the replaced database failed; its WAL goes aside with it",
			LogKeyUser, t.User, "db", live, "err", err)
	}

	if err := step(StepSetAside); err != nil {
		keepTmp = true
		return err
	}
	aside := freeAside(ud, liveName+asideInfix+stamp)
	if err := ud.Link(liveName, aside); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("set aside: %w", err)
	}
	for _, sfx := range sidecarSuffixes {
		if err := ud.Rename(liveName+sfx, aside+sfx); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("set aside %s: %w", sfx, err)
		}
	}
	if err := syncDir(ud); err != nil {
		return err
	}

	if err := step(StepSwap); err != nil {
		keepTmp = true
		return err
	}
	if err := ud.Rename(tmpName, liveName); err != nil {
		return err
	}
	keepTmp = true // it is the live database now
	if err := syncDir(ud); err != nil {
		return err
	}
	s.logger().Info("restored", LogKeyUser, t.User, LogKeySnapshot, snap.Path, "db", live)

	if err := step(StepCleanup); err != nil {
		return err
	}
	if !s.opts.KeepReplaced {
		// This restore's, and those of restores killed before this step.
		// The snapshot is live: what stays behind is a warning, not a
		// failed restore (a rollback would blame and leave the unit).
		if err := removeAside(ud, liveName); err != nil {
			s.logger().Warn("restored, but a replaced database could not be removed; delete it by hand",
				LogKeyUser, t.User, "db", live, "err", err)
		}
	}
	if liveName == StateDB {
		// The snapshot predates statev2 (or it was stale): a statev2.sqlite
		// left behind would otherwise shadow the restored state.sqlite.
		// A restore killed between the renames below left sidecars
		// without their database: SQLite would replay that WAL into the
		// next statev2.sqlite. They go the same way.
		if anyExists(ud, StateV2DB, sidecarSuffixes) {
			v2aside := freeAside(ud, StateV2DB+retiredInfix+stamp)
			for _, sfx := range append([]string{""}, sidecarSuffixes...) {
				if err := ud.Rename(StateV2DB+sfx, v2aside+sfx); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("retire %s: %w", StateV2DB, err)
				}
			}
			s.logger().Info("statev2 retired", LogKeyUser, t.User, "db", filepath.Join(dir, v2aside))
		}
	}
	return syncDir(ud)
}

// checkpoint folds live's WAL into its main file (TRUNCATE), so the main
// file is whole without it. A missing database (in ud, the directory live
// is in) is not an error.
//
// SQLite opens the database, its -wal and -shm by path, and may delete the
// -wal on close: all of it runs with owner's filesystem rights (AsOwner).
// The user can swap a directory on that path for a symlink into another
// user's tree between SQLite's lstat walk and any of those opens; as root,
// the checkpoint would then write that user's WAL into their database (or
// into this one) and truncate it. As the owner, the swap reaches nothing
// the owner could not write anyway, and SQLite creates the sidecars as
// the owner: there is nothing left for FixSidecars to give back.
func (s *Store) checkpoint(ctx context.Context, ud *os.Root, live string, owner Owner) error {
	if _, err := ud.Lstat(filepath.Base(live)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return AsOwner(owner, func() (err error) {
		c, err := sqlite.OpenConn(live, sqlite.OpenReadWrite|openNoFollowFlag)
		if err != nil {
			return sqliteErr(ctx, err)
		}
		defer func() {
			if cerr := c.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
		c.SetBusyTimeout(s.busyTimeout())
		c.SetInterrupt(ctx.Done())
		busy := 0
		err = sqlitex.ExecuteTransient(c, "PRAGMA wal_checkpoint(TRUNCATE)", &sqlitex.ExecOptions{
			ResultFunc: func(st *sqlite.Stmt) error { busy = st.ColumnInt(0); return nil },
		})
		if err != nil {
			return sqliteErr(ctx, err)
		}
		if busy != 0 {
			return fmt.Errorf("%w: checkpoint blocked by another connection", ErrBusy)
		}
		return nil
	})
}

// freeAside returns base, or base.N, whichever names no file in ud yet
// (nor its sidecars).
func freeAside(ud *os.Root, base string) string {
	for n := 0; ; n++ {
		p := base
		if n > 0 {
			p = fmt.Sprintf("%s.%d", base, n)
		}
		if !anyExists(ud, p, sidecarSuffixes) {
			return p
		}
	}
}

// removeStaleRestoreTemps deletes copies a crashed restore left in ud.
func removeStaleRestoreTemps(ud *os.Root, liveName string) {
	_ = removeRegular(ud, "."+liveName+restoreTmpInfix) // what stays is retried by the next restore
}

// ownSnapshot refuses a snapshot of another user: its metadata names
// someone else, or it lies in another user's directory of this store. A
// restore of it would hand user someone else's data and delete theirs.
func (s *Store) ownSnapshot(user string, snap Snapshot) error {
	owner := snap.User
	if dir := filepath.Dir(filepath.Clean(snap.Path)); owner == "" && filepath.Dir(dir) == filepath.Clean(s.Dest) {
		owner = filepath.Base(dir)
	}
	if owner != "" && owner != user {
		return fmt.Errorf("%w: %s is %s's snapshot, not %s's", ErrNoSnapshot, snap.Path, owner, user)
	}
	return nil
}

// removeAside deletes what restores set aside beside liveName in ud
// (regular files named <live>.replaced-*, sidecars included): once a
// restore has swapped, the old databases of earlier ones, killed before
// their cleanup, are as replaced as its own. It returns what it could not
// remove.
func removeAside(ud *os.Root, liveName string) error {
	return removeRegular(ud, liveName+asideInfix)
}

// removeRegular deletes the regular files in ud whose names start with
// prefix, and returns what it could not remove.
func removeRegular(ud *os.Root, prefix string) error {
	d, err := ud.Open(".")
	if err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			if err := ud.Remove(e.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// anyExists reports whether name or any of name+suffix names a file in ud.
func anyExists(ud *os.Root, name string, suffixes []string) bool {
	for _, sfx := range append([]string{""}, suffixes...) {
		if _, err := ud.Lstat(name + sfx); !errors.Is(err, os.ErrNotExist) {
			return true
		}
	}
	return false
}
