//go:build linux

package statebackup

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// flushChunk is how much of a fresh snapshot is written back at a time.
const flushChunk = 8 << 20

// writeBackPoll is how often a growing snapshot is looked at for complete
// chunks to write back.
const writeBackPoll = 10 * time.Millisecond

// sync_file_range(2) flags (not in package syscall).
const (
	syncFileRangeWaitBefore = 1
	syncFileRangeWrite      = 2
	syncFileRangeWaitAfter  = 4
)

// writeBack makes a snapshot durable in chunks while it is still being
// written: each 8 MB the copy has moved past is written back at once, so
// the disk works while SQLite copies instead of after it. One fsync of a
// 200 MB file would queue it all at the disk at once, and the live server's
// small WAL fsyncs would wait behind it; chunks let them through.
type writeBack struct {
	path string
	stop chan struct{}
	done chan struct{}
	f    *os.File // nil until the file exists
	off  int64    // written back up to here
	err  error
}

// startWriteBack starts watching path (which may not exist yet). finish
// must be called once the copy is closed.
func startWriteBack(path string) *writeBack {
	w := &writeBack{path: path, stop: make(chan struct{}), done: make(chan struct{})}
	go w.watch()
	return w
}

func (w *writeBack) watch() {
	defer close(w.done)
	t := time.NewTicker(writeBackPoll)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		if w.f == nil {
			f, err := openNoFollow(w.path)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				w.err = err
				return
			}
			w.f = f
		}
		fi, err := w.f.Stat()
		if err != nil {
			w.err = err
			return
		}
		// Leave the last chunk: SQLite may still be filling it.
		if !w.flushTo(fi.Size() - flushChunk) {
			return
		}
	}
}

// flushTo writes back whole chunks below end; false when sync_file_range
// is not supported (finish's fsync then does it all).
func (w *writeBack) flushTo(end int64) bool {
	for w.off+flushChunk <= end {
		err := syscall.SyncFileRange(int(w.f.Fd()), w.off, flushChunk,
			syncFileRangeWaitBefore|syncFileRangeWrite|syncFileRangeWaitAfter)
		if err != nil {
			return false
		}
		w.off += flushChunk
	}
	return true
}

// finish writes back the rest in chunks and fsyncs the file. Pages SQLite
// rewrote behind the watcher (the header at commit) are caught by the
// fsync.
func (w *writeBack) finish() error {
	close(w.stop)
	<-w.done
	if w.err != nil {
		if w.f != nil {
			w.f.Close()
		}
		return w.err
	}
	if w.f == nil {
		f, err := openNoFollow(w.path)
		if err != nil {
			return err
		}
		w.f = f
	}
	defer w.f.Close()
	fi, err := w.f.Stat()
	if err != nil {
		return err
	}
	w.flushTo(fi.Size() + flushChunk - 1)
	return w.f.Sync()
}

// abort stops watching without flushing.
func (w *writeBack) abort() {
	close(w.stop)
	<-w.done
	if w.f != nil {
		w.f.Close()
	}
}
