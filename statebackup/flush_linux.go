//go:build linux

package statebackup

import (
	"os"
	"syscall"
)

// flushChunk is how much of a fresh snapshot is written back at a time.
const flushChunk = 8 << 20

// sync_file_range(2) flags (not in package syscall).
const (
	syncFileRangeWaitBefore = 1
	syncFileRangeWrite      = 2
	syncFileRangeWaitAfter  = 4
)

// flushFile makes path durable in chunks before the final fsync. One fsync
// of a 200 MB file queues it all at the disk at once, and the live server's
// small WAL fsyncs wait behind it; chunked write-back lets them through
// between chunks.
func flushFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	fd := int(f.Fd())
	for off := int64(0); off < fi.Size(); off += flushChunk {
		err := syscall.SyncFileRange(fd, off, flushChunk,
			syncFileRangeWaitBefore|syncFileRangeWrite|syncFileRangeWaitAfter)
		if err != nil {
			break // not supported here: the fsync below does it all
		}
	}
	return f.Sync()
}
