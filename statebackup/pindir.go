package statebackup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// openDir opens the directory dir as an os.Root, refusing it
// (ErrUnsafePath) when any element of its path is a symlink: SQLite's own
// rule for a database opened with SQLITE_OPEN_NOFOLLOW, applied to the
// renames, links, removals and chowns this package makes beside it.
//
// A user owns ~/.t3 and can swap a directory on the way for a symlink to
// another user's tree at any moment, so the path is walked one element at
// a time from "/", each opened relative to the one before without
// following a symlink, and the Root is then checked to be the directory
// that walk reached. Every later operation through the Root stays in that
// directory, whatever is renamed over its path meanwhile.
//
// An empty dir is ErrNoUserdataDir: made absolute, it would be the working
// directory.
func openDir(dir string) (*os.Root, error) {
	if dir == "" {
		return nil, ErrNoUserdataDir
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	walked, err := walkNoSymlink(abs)
	if err != nil {
		return nil, err
	}
	defer walked.Close()
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, err
	}
	want, err := walked.Stat()
	if err == nil {
		var got os.FileInfo
		if got, err = r.Stat("."); err == nil && !os.SameFile(want, got) {
			err = fmt.Errorf("%s: %w: replaced while it was being opened", abs, ErrUnsafePath)
		}
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// walkNoSymlink opens the absolute directory path abs element by element,
// never following a symlink.
func walkNoSymlink(abs string) (*os.File, error) {
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	at := "/"
	for _, name := range strings.Split(strings.TrimPrefix(abs, "/"), "/") {
		if name == "" {
			continue
		}
		at = filepath.Join(at, name)
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			var st unix.Stat_t
			if (errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)) &&
				unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = fmt.Errorf("%s: %w: a symlink on the way to %s (refused, never followed)", at, ErrUnsafePath, abs)
			} else {
				err = &os.PathError{Op: "open", Path: at, Err: err}
			}
			unix.Close(fd)
			return nil, err
		}
		unix.Close(fd)
		fd = next
	}
	return os.NewFile(uintptr(fd), abs), nil
}

// syncDir fsyncs the directory r is.
func syncDir(r *os.Root) error { return syncFile(r, ".") }

// syncFile fsyncs the file name in r.
func syncFile(r *os.Root, name string) error {
	f, err := r.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
