package statebackup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/t3fleet/t3fleet"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Defaults for the zero values of Options.
const (
	DefaultTimeout     = 15 * time.Minute
	DefaultBusyTimeout = 5 * time.Second
	DefaultKeep        = 6
)

// Log keys used by Store.
const (
	LogKeyUser     = "user"
	LogKeySnapshot = "snapshot"
	LogKeySource   = "source"
	LogKeyTook     = "took"
)

// Options tunes a Store. The zero value works.
type Options struct {
	// Timeout bounds one snapshot or one restore. Zero: DefaultTimeout.
	Timeout time.Duration
	// BusyTimeout is how long a locked database is retried before the
	// operation fails with ErrBusy. Zero: DefaultBusyTimeout.
	BusyTimeout time.Duration
	// IntegrityCheck runs PRAGMA integrity_check instead of quick_check.
	IntegrityCheck bool
	// Method is how the copy is made. Zero: MethodBackupAPI.
	Method Method
	// KeepReplaced keeps the database a restore replaced, renamed
	// <name>.replaced-<ts>, instead of deleting it once the restore is done.
	KeepReplaced bool
	// Now returns the current time. Nil: time.Now.
	Now func() time.Time
	// Logger receives one line per snapshot, restore and deletion. Nil:
	// discard.
	Logger *slog.Logger
	// BeforeRestoreStep, when set, runs before each step of Restore. An error
	// stops the restore right there, with no cleanup, as a crash would: it is
	// the fault-injection point for crash tests.
	BeforeRestoreStep func(step RestoreStep) error
}

// Method is how Backup copies the live database. Both hold one read
// transaction for the whole copy: a consistent point in time, the server's
// WAL writer never blocked.
type Method int

const (
	// MethodBackupAPI copies pages with SQLite's online backup API, in
	// steps of backupStepPages under one read transaction held on the
	// source (so the steps see one image and are not restarted by the
	// server's writes, and the context is heeded between them); the copy is
	// then switched to journal_mode=delete. The default: it copies pages as
	// they are, with less CPU than rebuilding them.
	MethodBackupAPI Method = iota
	// MethodVacuumInto rebuilds the database into the copy with VACUUM INTO
	// (compacted, journal_mode=delete).
	MethodVacuumInto
)

// String names the method: "backup-api" or "vacuum-into".
func (m Method) String() string {
	if m == MethodVacuumInto {
		return "vacuum-into"
	}
	return "backup-api"
}

// Store is a Backuper over SQLite: snapshots live under Dest, one directory
// per user, in the seed's layout:
//
//	<Dest>/<user>/state-<YYYYmmdd-HHMMSS>.sqlite
//	<Dest>/<user>/state-prebump-<version>-<YYYYmmdd-HHMMSS>.sqlite
//	<Dest>/<user>/<snapshot>.json   (metadata)
//
// &Store{Dest: dest} is NewStore(dest, Options{}).
type Store struct {
	Dest string
	opts Options
}

var _ Backuper = (*Store)(nil)

// NewStore returns a Store keeping snapshots under dest.
func NewStore(dest string, opts Options) *Store {
	return &Store{Dest: dest, opts: opts}
}

// The options' zero values are read as their defaults here, at each use, so
// that a Store written as a literal works as NewStore's does.

func (s *Store) timeout() time.Duration {
	if s.opts.Timeout <= 0 {
		return DefaultTimeout
	}
	return s.opts.Timeout
}

func (s *Store) busyTimeout() time.Duration {
	if s.opts.BusyTimeout <= 0 {
		return DefaultBusyTimeout
	}
	return s.opts.BusyTimeout
}

func (s *Store) now() time.Time {
	if s.opts.Now == nil {
		return time.Now()
	}
	return s.opts.Now()
}

// discard is the logger of a Store given none.
var discard = slog.New(slog.DiscardHandler)

func (s *Store) logger() *slog.Logger {
	if s.opts.Logger == nil {
		return discard
	}
	return s.opts.Logger
}

// UserDir is the directory holding user's snapshots. It fails for a user
// name that is not a valid OS user.
func (s *Store) UserDir(user string) (string, error) {
	if err := t3fleet.ValidOSUser(user); err != nil {
		return "", err
	}
	return filepath.Join(s.Dest, user), nil
}

// Backup takes an online snapshot of t's live database while its server
// keeps writing: copy into a staging file in Dest (written back to disk as
// it grows), fsync, integrity check and sha256, then rename into
// <Dest>/<user>/ next to its metadata. label "" means LabelDaily. A snapshot that fails its check is deleted and the error is a
// *CheckError.
func (s *Store) Backup(ctx context.Context, t Target, label string) (snap Snapshot, err error) {
	if label == "" {
		label = LabelDaily
	}
	defer func() {
		if err != nil {
			err = &BackupError{User: t.User, Err: err}
		}
	}()
	userDir, err := s.UserDir(t.User)
	if err != nil {
		return Snapshot{}, err
	}
	if err := ValidLabel(label); err != nil {
		return Snapshot{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	start := time.Now()

	// The live database and its owner (who gets the snapshot) are read in
	// the user's directory opened once: through a symlinked ~/.t3 they
	// would be another user's, and that user handed this user's snapshots.
	src, fi, err := liveIn(t.UserdataDir)
	if err != nil {
		return Snapshot{}, err
	}
	owner := OwnerOf(fi)
	if _, err := os.Stat(s.Dest); os.IsNotExist(err) {
		if err := os.MkdirAll(s.Dest, 0o700); err != nil {
			return Snapshot{}, err
		}
		if err := fsyncPath(filepath.Dir(s.Dest)); err != nil {
			return Snapshot{}, err
		}
	}
	if err := safeDir(userDir, owner); err != nil {
		return Snapshot{}, err
	}
	s.removeStaleStaging()
	if err := roomFor(src, fi.Size(), s.Dest); err != nil {
		return Snapshot{}, err
	}
	// Stage in a directory only this process can write, so nobody can plant
	// a link at the name SQLite is about to create.
	staging, err := os.MkdirTemp(s.Dest, stagingPrefix)
	if err != nil {
		return Snapshot{}, err
	}
	defer os.RemoveAll(staging)
	tmp := filepath.Join(staging, "snapshot.sqlite")

	copyFn := s.backupAPI
	if s.opts.Method == MethodVacuumInto {
		copyFn = s.vacuumInto
	}
	// The disk writes the copy back while SQLite is still making it.
	wb := startWriteBack(tmp)
	if err := copyFn(ctx, src, owner, tmp); err != nil {
		wb.abort()
		// Both ends named: a full or failing disk is most often the
		// destination's, which the source's path alone would hide.
		return Snapshot{}, fmt.Errorf("snapshot %s to %s: %w", src, tmp, err)
	}
	copied := time.Now()
	// The copy is complete and never written again: finish writing it back,
	// check it and hash it at once (one waits on the disk, two on the CPU).
	type done struct {
		err error
		at  time.Time
	}
	flushc := make(chan done, 1)
	go func() { err := wb.finish(); flushc <- done{err, time.Now()} }()
	type hashed struct {
		sum  string
		size int64
		done
	}
	hashc := make(chan hashed, 1)
	go func() {
		sum, size, err := hashFile(tmp)
		hashc <- hashed{sum, size, done{err, time.Now()}}
	}()
	// The staging file is root's, 0600, in a directory only we can write
	// (ownership is handed over after the check): nobody can truncate it
	// under the check's memory map.
	level, err := checkDB(ctx, tmp, s.opts.IntegrityCheck, true, s.busyTimeout())
	checked := time.Now()
	h, fl := <-hashc, <-flushc
	if err != nil {
		s.logger().Warn("snapshot failed its check, deleted", LogKeyUser, t.User, LogKeySource, src, "err", err)
		return Snapshot{}, err
	}
	if fl.err != nil {
		return Snapshot{}, fl.err
	}
	if h.err != nil {
		return Snapshot{}, h.err
	}
	sum, size := h.sum, h.size
	if err := setOwnerMode(tmp, owner, 0o600); err != nil {
		return Snapshot{}, err
	}

	now, err := s.takenAt(ctx, t)
	if err != nil {
		return Snapshot{}, err
	}
	m := metadata{
		User: t.User, Label: label, Time: now, Size: size, SHA256: sum,
		SchemaLevel: level, Version: t.Version, Source: filepath.Base(src),
		Check: checkName(s.opts.IntegrityCheck),
	}
	metaTmp := filepath.Join(staging, "snapshot.json")
	if err := writeJSON(metaTmp, m); err != nil {
		return Snapshot{}, err
	}
	if err := setOwnerMode(metaTmp, owner, 0o600); err != nil {
		return Snapshot{}, err
	}
	// Metadata first: a crash in between leaves an orphan .json that List
	// ignores, never a snapshot that looks old and unverified. Linking it
	// in claims the name: another backup in the same second takes the next.
	final, err := claimName(userDir, label, now, metaTmp)
	if err != nil {
		return Snapshot{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(final + MetadataSuffix)
		return Snapshot{}, err
	}
	if err := fsyncPath(userDir); err != nil {
		return Snapshot{}, err
	}
	snap = m.snapshot(final)
	s.logger().Info("snapshot taken", LogKeyUser, t.User, LogKeySnapshot, final,
		LogKeySource, src, "size", size, "schema", level, LogKeyTook, time.Since(start),
		"method", s.opts.Method, "copy", copied.Sub(start), "flush", fl.at.Sub(copied), "check", checked.Sub(copied), "hash", h.at.Sub(copied))
	return snap, nil
}

func checkName(integrity bool) string {
	if integrity {
		return "integrity_check"
	}
	return "quick_check"
}

// vacuumInto copies src into the new file dst with VACUUM INTO on a
// read-only connection: one read transaction, so a WAL writer is never
// blocked and the copy is one consistent point in time.
func (s *Store) vacuumInto(ctx context.Context, src string, owner Owner, dst string) (err error) {
	c, err := s.openSource(ctx, src, owner, false)
	if err != nil {
		return sqliteErr(ctx, err)
	}
	defer func() {
		if cerr := c.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if ferr := FixSidecars(src); err == nil && ferr != nil {
			err = ferr
		}
	}()
	// The output inherits this connection's synchronous level: OFF leaves
	// the fsync to the write-back, which writes in chunks instead of one
	// large flush that the server's WAL fsyncs would queue behind. It is a
	// setting of this connection only; nothing is written to the source.
	if err := sqlitex.ExecuteTransient(c, "PRAGMA synchronous=OFF", nil); err != nil {
		return sqliteErr(ctx, err)
	}
	err = sqlitex.ExecuteTransient(c, "VACUUM INTO ?", &sqlitex.ExecOptions{Args: []any{dst}})
	return sqliteErr(ctx, err)
}

// backupAPI copies src into the new file dst with the online backup API in
// a single step, then makes dst a plain rollback-journal database so
// opening it later leaves no -wal/-shm beside it.
func (s *Store) backupAPI(ctx context.Context, src string, owner Owner, dst string) (err error) {
	c, err := s.openSource(ctx, src, owner, true)
	if err != nil {
		return sqliteErr(ctx, err)
	}
	defer func() {
		if cerr := c.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if ferr := FixSidecars(src); err == nil && ferr != nil {
			err = ferr
		}
	}()
	d, err := sqlite.OpenConn(dst, sqlite.OpenReadWrite|sqlite.OpenCreate|openNoFollowFlag)
	if err != nil {
		return sqliteErr(ctx, err)
	}
	defer func() {
		if cerr := d.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	d.SetInterrupt(ctx.Done())
	// The write-back makes the copy durable, in chunks.
	if err := sqlitex.ExecuteTransient(d, "PRAGMA synchronous=OFF", nil); err != nil {
		return sqliteErr(ctx, err)
	}
	// One read transaction for all the steps (begun by openSource): one
	// image of the source, and no restart when the server writes (a step
	// that opened its own would see the change and start over).
	defer sqlitex.ExecuteTransient(c, "ROLLBACK", nil)
	b, err := sqlite.NewBackup(d, "main", c, "main")
	if err != nil {
		return sqliteErr(ctx, err)
	}
	for more := true; more && err == nil; {
		// Step itself does not heed the interrupt: the context is checked
		// between steps, so a timeout or a cancel stops the copy (and the
		// read transaction that holds the server's WAL back) soon.
		if err = ctx.Err(); err == nil {
			more, err = b.Step(backupStepPages)
		}
	}
	if cerr := b.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return sqliteErr(ctx, err)
	}
	if err := sqlitex.ExecuteTransient(d, "PRAGMA journal_mode=DELETE", nil); err != nil {
		return sqliteErr(ctx, err)
	}
	return nil
}

// openSource opens the live database src read-only with its owner's
// filesystem rights (AsOwner) and reads its schema, which opens its -wal
// and -shm too: every file of the source SQLite opens by path is opened
// as the user, who can swap a directory on that path for a symlink into
// another user's tree at any moment. With begin, the read is in a
// transaction left open for the caller. The files stay open for the
// connection's life.
func (s *Store) openSource(ctx context.Context, src string, owner Owner, begin bool) (*sqlite.Conn, error) {
	var c *sqlite.Conn
	err := AsOwner(owner, func() error {
		var err error
		if c, err = openRO(ctx, src, s.busyTimeout()); err != nil {
			return err
		}
		if begin {
			if err := sqlitex.ExecuteTransient(c, "BEGIN", nil); err != nil {
				return err
			}
		}
		return sqlitex.ExecuteTransient(c, "SELECT count(*) FROM sqlite_schema", nil)
	})
	if err != nil && c != nil {
		c.Close()
		return nil, err
	}
	return c, err
}

// claimName picks the seed-style path for a new snapshot, adding .N when
// one already holds the plain name, and claims it by linking meta in as
// its metadata: a link never replaces, so two backups in one second (the
// timer and an operator) cannot take the same name.
func claimName(dir, label string, t time.Time, meta string) (string, error) {
	for seq := 0; seq < 1000; seq++ {
		final := filepath.Join(dir, SnapshotName(label, t, seq))
		if _, err := os.Lstat(final); !errors.Is(err, fs.ErrNotExist) {
			continue // an old snapshot without metadata holds it
		}
		err := os.Link(meta, final+MetadataSuffix)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		return final, nil
	}
	return "", fmt.Errorf("%s: no free snapshot name for %s", dir, t.Format(TimeLayout))
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// backupStepPages is how many pages one backup step copies (16 MiB of
// 4 KiB pages) between two looks at the context.
const backupStepPages = 4096

// stagingPrefix starts the name of a backup's staging directory in Dest.
const stagingPrefix = ".staging-"

// removeStaleStaging removes the staging directories of backups killed
// mid-copy (each a whole copy of a database): those older than the backup
// timeout, which no running backup can still own.
func (s *Store) removeStaleStaging() {
	dirs, _ := filepath.Glob(filepath.Join(s.Dest, stagingPrefix+"*"))
	for _, d := range dirs {
		if fi, err := os.Lstat(d); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > s.timeout() {
			s.logger().Warn("removing a stale backup staging directory", "dir", d, "age", time.Since(fi.ModTime()).Round(time.Second))
			_ = os.RemoveAll(d)
		}
	}
}
