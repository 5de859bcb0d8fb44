package realtest

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// OpenPath makes every directory above dir traversable (0755), up to
// os.TempDir() or /: t.TempDir's are 0700, where /home on a real host lets
// every user through to their own home.
func OpenPath(tb testing.TB, dir string) {
	tb.Helper()
	for d := filepath.Dir(dir); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatalf("open path %s: %v", dir, err)
		}
	}
}

// SwapWithSymlink swaps the directory dir with a symlink to target, over
// and over (RENAME_EXCHANGE: dir is always one or the other), as a user
// racing root's path walk would, until the returned stop is called (at
// the latest when tb ends); stop leaves the real directory at dir. A file
// system that cannot exchange is a missing part (Missing): no swap would
// happen, and a race test would pass having raced nothing.
func SwapWithSymlink(tb testing.TB, dir, target string) (stop func()) {
	tb.Helper()
	evil := dir + ".evil"
	if err := os.Symlink(target, evil); err != nil {
		tb.Fatalf("swap %s: %v", dir, err)
	}
	exchange := func() error { return unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, evil, unix.RENAME_EXCHANGE) }
	if err := exchange(); err != nil {
		Missing(tb, "RENAME_EXCHANGE of %s: %v", dir, err)
	}
	if err := exchange(); err != nil {
		tb.Fatalf("swap %s back: %v", dir, err)
	}
	var halt atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !halt.Load() {
			_ = exchange()
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			halt.Store(true)
			<-done
			if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				if err := exchange(); err != nil {
					tb.Fatalf("swap %s back: %v", dir, err)
				}
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}
