package statebackup

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// roomFor checks, before anything is written, that dest has room for a
// snapshot of the live database src (size bytes): at most the database
// and its WAL, whatever method copies it.
func roomFor(src string, size int64, dest string) error {
	if fi, err := os.Lstat(src + "-wal"); err == nil && fi.Mode().IsRegular() {
		size += fi.Size()
	}
	var st unix.Statfs_t
	if free, short := shortOf(unix.Statfs(dest, &st), &st, size); short {
		return fmt.Errorf("%w: %s may take %d bytes, %s has %d free", ErrNoRoom, src, size, dest, free)
	}
	return nil
}

// roomIn fails with ErrNoRoom when the file system of the directory r
// has fewer than size bytes available to users (root's reserve left out).
func roomIn(r *os.Root, size int64) error {
	d, err := r.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	var st unix.Statfs_t
	if free, short := shortOf(unix.Fstatfs(int(d.Fd()), &st), &st, size); short {
		return fmt.Errorf("%w: %d bytes to copy, %s has %d free", ErrNoRoom, size, r.Name(), free)
	}
	return nil
}

// shortOf reports the bytes st leaves to users, and whether they are fewer
// than need. A free space that could not be read (statErr) is no reason to
// refuse: the copy then finds out.
func shortOf(statErr error, st *unix.Statfs_t, need int64) (uint64, bool) {
	if statErr != nil {
		return 0, false
	}
	free := uint64(st.Bavail) * uint64(st.Bsize)
	return free, uint64(need) > free
}
