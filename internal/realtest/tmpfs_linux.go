package realtest

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes on a new directory, unmounted when tb
// ends: a disk that really fills up, ENOSPC coming from the kernel. It
// needs root (NeedRoot).
func Tmpfs(tb testing.TB, size int64) string {
	tb.Helper()
	NeedRoot(tb)
	dir := tb.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		Missing(tb, "mount a tmpfs on %s: %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// FillTo leaves free bytes (rounded to the file system's blocks) free on
// the file system holding dir, taken by a file it returns: removing that
// file gives the space back.
func FillTo(tb testing.TB, dir string, free int64) string {
	tb.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		tb.Fatalf("statfs %s: %v", dir, err)
	}
	p := filepath.Join(dir, ".realtest-filler")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatalf("fill %s: %v", dir, err)
	}
	defer f.Close()
	if n := int64(st.Bavail)*st.Bsize - free; n > 0 {
		if _, err := f.Write(make([]byte, n)); err != nil {
			tb.Fatalf("fill %s: %v", dir, err)
		}
	}
	return p
}
