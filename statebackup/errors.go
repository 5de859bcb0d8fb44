package statebackup

import (
	"errors"
	"fmt"
)

// Sentinels callers branch on. Each is returned wrapped with the operation,
// and sometimes inside one of the typed errors below.
var (
	// ErrNoDatabase: the target's userdata directory holds no state database.
	ErrNoDatabase = errors.New("no state database")
	// ErrNoRoom: the destination has less free space than the snapshot may
	// take (the live database and its WAL); nothing was written.
	ErrNoRoom = errors.New("not enough free space for the snapshot")
	// ErrNoUserdataDir: the target names no userdata directory (its
	// instance keeps its state on another host). Unlike ErrNoDatabase it
	// never means "nothing to back up yet".
	ErrNoUserdataDir = errors.New("target has no userdata directory")
	// ErrUnsafePath: a path is a symlink, not a regular file or directory,
	// has a symlink among the directories on its way, or would leave the
	// destination (a planted link is never followed).
	ErrUnsafePath = errors.New("unsafe path")
	// ErrBusy: the database stayed locked past the busy timeout.
	ErrBusy = errors.New("database busy")
	// ErrCheckFailed: a snapshot failed its integrity check.
	ErrCheckFailed = errors.New("integrity check failed")
	// ErrChecksum: a snapshot's bytes do not match its recorded sha256.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrInvalidLabel: a label or version that cannot be part of a file name.
	ErrInvalidLabel = errors.New("invalid label")
	// ErrNoSnapshot: no snapshot matches what was asked for.
	ErrNoSnapshot = errors.New("no snapshot")
)

// CheckError is a failed PRAGMA quick_check or integrity_check. It unwraps
// to ErrCheckFailed.
type CheckError struct {
	Path   string
	Result []string // the rows the check returned (never just "ok")
}

func (e *CheckError) Error() string {
	first := ""
	if len(e.Result) > 0 {
		first = e.Result[0]
	}
	return fmt.Sprintf("%s: %v (%d problem(s), first: %q)", e.Path, ErrCheckFailed, len(e.Result), first)
}

func (e *CheckError) Unwrap() error { return ErrCheckFailed }

// ChecksumError is a snapshot whose sha256 is not the recorded one. It
// unwraps to ErrChecksum.
type ChecksumError struct {
	Path      string
	Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("%s: %v: want sha256 %s, got %s", e.Path, ErrChecksum, e.Want, e.Got)
}

func (e *ChecksumError) Unwrap() error { return ErrChecksum }

// BackupError is how Store.Backup fails: the user whose backup it was, and
// why. A caller that names the user itself (a rollout's run line) can tell
// it is named already.
type BackupError struct {
	User string
	Err  error
}

func (e *BackupError) Error() string { return "backup " + e.User + ": " + e.Err.Error() }

func (e *BackupError) Unwrap() error { return e.Err }

// RestoreError is how Store.Restore fails: the user, the snapshot it was
// putting back, and why. A caller that names the user itself (a rollout's
// rollback step) can tell it is named already.
type RestoreError struct {
	User     string
	Snapshot string // the snapshot's path
	Err      error
}

func (e *RestoreError) Error() string {
	return "restore " + e.User + " from " + e.Snapshot + ": " + e.Err.Error()
}

func (e *RestoreError) Unwrap() error { return e.Err }
