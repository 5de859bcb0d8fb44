package statebackup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Names of the live databases a t3 build uses, inside <base-dir>/userdata.
const (
	StateDB   = "state.sqlite"
	StateV2DB = "statev2.sqlite"
)

// sidecarSuffixes are the files SQLite keeps next to a database.
var sidecarSuffixes = []string{"-wal", "-shm", "-journal"}

// LiveDB returns the path of the database the build actually uses in
// userdataDir: statev2.sqlite where it exists and is at least as new as
// state.sqlite (newer builds copy state.sqlite once, which then stays
// frozen), else state.sqlite. "New" is the latest modification time of the
// file and its -wal. It returns ErrNoDatabase when neither exists, and
// ErrUnsafePath when the chosen name is a symlink or not a regular file.
func LiveDB(userdataDir string) (string, error) {
	v1, t1, err1 := dbMtime(filepath.Join(userdataDir, StateDB))
	v2, t2, err2 := dbMtime(filepath.Join(userdataDir, StateV2DB))
	for _, err := range []error{err1, err2} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	switch {
	case err2 == nil && (err1 != nil || !t2.Before(t1)):
		return v2, nil
	case err1 == nil:
		return v1, nil
	}
	return "", fmt.Errorf("%s: %w", userdataDir, ErrNoDatabase)
}

func dbMtime(path string) (string, time.Time, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return path, time.Time{}, err
	}
	if !fi.Mode().IsRegular() {
		return path, time.Time{}, fmt.Errorf("%s: %w: not a regular file", path, ErrUnsafePath)
	}
	t := fi.ModTime()
	if wi, err := os.Lstat(path + "-wal"); err == nil && wi.Mode().IsRegular() && wi.ModTime().After(t) {
		t = wi.ModTime()
	}
	return path, t, nil
}

// Owner is the numeric owner of a file.
type Owner struct{ UID, GID int }

// FileOwner returns the owner of path (not following a final symlink).
func FileOwner(path string) (Owner, os.FileMode, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Owner{}, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Owner{-1, -1}, fi.Mode(), nil
	}
	return Owner{int(st.Uid), int(st.Gid)}, fi.Mode(), nil
}

// FixSidecars gives the -wal, -shm and -journal files next to dbPath the
// owner of dbPath, when this process runs as root and they belong to someone
// else. A root-owned -shm in a user's data directory would lock that user's
// server out of its own database. SQLite already does this for files it
// creates as root; this is the second belt, run after every open by root.
func FixSidecars(dbPath string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	want, _, err := FileOwner(dbPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, s := range sidecarSuffixes {
		if err := fixOwner(dbPath+s, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fixOwner gives the file at p owner want, on its open descriptor: p is in
// the user's directory, where a rename can put a symlink or a hard link to
// another file under the name between a check and a chown by path. Only a
// regular file with one link is changed (a root-created sidecar has one;
// a hard link to /etc/shadow has two).
func fixOwner(p string, want Owner) error {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil // gone, or a symlink: nothing of ours to fix
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() || st.Nlink != 1 || (int(st.Uid) == want.UID && int(st.Gid) == want.GID) {
		return nil
	}
	return f.Chown(want.UID, want.GID)
}
