package statebackup

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// roomFor checks, before anything is written, that dest has room for a
// snapshot of the live database src (size bytes): at most the database
// and its WAL, whatever method copies it. A free space that cannot be read
// is no reason to refuse: the copy then finds out.
func roomFor(src string, size int64, dest string) error {
	if fi, err := os.Lstat(src + "-wal"); err == nil && fi.Mode().IsRegular() {
		size += fi.Size()
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dest, &st); err != nil {
		return nil
	}
	free := uint64(st.Bavail) * uint64(st.Bsize)
	if uint64(size) > free {
		return fmt.Errorf("%w: %s may take %d bytes, %s has %d free", ErrNoRoom, src, size, dest, free)
	}
	return nil
}
