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
// ErrUnsafePath when the chosen name is a symlink or not a regular file, or
// when a directory on the way to userdataDir is a symlink. An empty
// userdataDir is ErrNoUserdataDir, never the working directory.
func LiveDB(userdataDir string) (string, error) {
	path, _, err := liveIn(userdataDir)
	return path, err
}

// LiveDBOwner is LiveDB with the owner of the database it picks, read in
// userdataDir opened once (no symlink on the way followed): the owner of
// the file in the user's own directory, whatever is swapped over its path
// meanwhile. Open the database with that owner's rights (AsOwner): SQLite
// opens it, and its -wal and -shm, by path.
func LiveDBOwner(userdataDir string) (string, Owner, error) {
	path, fi, err := liveIn(userdataDir)
	if err != nil {
		return "", Owner{}, err
	}
	return path, OwnerOf(fi), nil
}

// liveIn is LiveDB with the live database's file info, read in
// userdataDir opened once (openDir): its owner is the user's.
func liveIn(userdataDir string) (string, os.FileInfo, error) {
	r, err := openDir(userdataDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil, fmt.Errorf("%s: %w (%v)", userdataDir, ErrNoDatabase, err)
		}
		return "", nil, err
	}
	defer r.Close()
	name, fi, err := liveDB(r)
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(userdataDir, name), fi, nil
}

// liveDB is LiveDB in the directory r: the name of the live database and
// its file info.
func liveDB(r *os.Root) (string, os.FileInfo, error) {
	f1, t1, err1 := dbMtime(r, StateDB)
	f2, t2, err2 := dbMtime(r, StateV2DB)
	for _, err := range []error{err1, err2} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", nil, err
		}
	}
	switch {
	case err2 == nil && (err1 != nil || !t2.Before(t1)):
		return StateV2DB, f2, nil
	case err1 == nil:
		return StateDB, f1, nil
	}
	return "", nil, fmt.Errorf("%s: %w", r.Name(), ErrNoDatabase)
}

func dbMtime(r *os.Root, name string) (os.FileInfo, time.Time, error) {
	fi, err := r.Lstat(name)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, time.Time{}, fmt.Errorf("%s: %w: not a regular file", filepath.Join(r.Name(), name), ErrUnsafePath)
	}
	t := fi.ModTime()
	if wi, err := r.Lstat(name + "-wal"); err == nil && wi.Mode().IsRegular() && wi.ModTime().After(t) {
		t = wi.ModTime()
	}
	return fi, t, nil
}

// Owner is the numeric owner of a file.
type Owner struct{ UID, GID int }

// FileOwner returns the owner of path (not following a final symlink).
func FileOwner(path string) (Owner, os.FileMode, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Owner{}, 0, err
	}
	return OwnerOf(fi), fi.Mode(), nil
}

// OwnerOf is the numeric owner in fi, as an open file's Stat gives it
// ({-1, -1} where the system has none).
func OwnerOf(fi os.FileInfo) Owner {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Owner{-1, -1}
	}
	return Owner{int(st.Uid), int(st.Gid)}
}

// FixSidecars gives the -wal, -shm and -journal files next to dbPath the
// owner of dbPath, when this process runs as root and they belong to someone
// else. A root-owned -shm in a user's data directory would lock that user's
// server out of its own database. SQLite already does this for files it
// creates as root, and files opened in AsOwner are created as the owner;
// this is the second belt, run after the backup's read and every check.
//
// The database and its sidecars are looked up in one directory, opened
// once (openDir): the user owns the directories on the way and could swap
// one for a symlink between two lookups by path, having the owner read in
// their own directory and another user's sidecars handed to them. A path
// through a symlinked directory is refused (ErrUnsafePath).
func FixSidecars(dbPath string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	r, err := openDir(filepath.Dir(dbPath))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("fix sidecars of %s: %w", dbPath, err)
	}
	defer r.Close()
	return fixSidecarsIn(r, filepath.Base(dbPath))
}

// fixSidecarsIn is FixSidecars for the database name in the directory r.
func fixSidecarsIn(r *os.Root, name string) error {
	fi, err := r.Lstat(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	want := OwnerOf(fi)
	var errs []error
	for _, s := range sidecarSuffixes {
		if err := fixOwner(r, name+s, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fixOwner gives the file name in r owner want, on its open descriptor:
// r is the user's directory, where a rename can put a symlink or a hard
// link to another file under the name between a check and a chown by
// path. Only a regular file with one link is changed (a root-created
// sidecar has one; a hard link to /etc/shadow has two).
func fixOwner(r *os.Root, name string, want Owner) error {
	if fi, err := r.Lstat(name); err != nil || !fi.Mode().IsRegular() {
		return nil // gone, or a symlink: nothing of ours to fix
	}
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil // gone meanwhile
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
