package statebackup_test

import (
	"os"
	"syscall"
	"testing"
	"unsafe"

	"github.com/t3fleet/t3fleet/internal/realtest"
)

// setImmutable sets the immutable attribute (chattr +i) on path, so that
// not even root can remove it, and clears it at cleanup. Where the file
// system or the process's capabilities do not allow it, the test skips, or
// fails under T3FLEET_REQUIRE_REAL=1 (realtest.Missing).
func setImmutable(tb testing.TB, path string) {
	tb.Helper()
	const (
		fsIocGetflags = 0x80086601
		fsIocSetflags = 0x40086602
		fsImmutableFl = 0x10
	)
	set := func(on bool) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		var flags int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocGetflags, uintptr(unsafe.Pointer(&flags))); e != 0 {
			return e
		}
		if on {
			flags |= fsImmutableFl
		} else {
			flags &^= fsImmutableFl
		}
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocSetflags, uintptr(unsafe.Pointer(&flags))); e != 0 {
			return e
		}
		return nil
	}
	if err := set(true); err != nil {
		realtest.Missing(tb, "cannot make %s immutable here: %v", path, err)
	}
	tb.Cleanup(func() { _ = set(false) })
}
