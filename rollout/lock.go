package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// DefaultLockWait is how long a run waits for another to finish.
const DefaultLockWait = 30 * time.Second

// ErrLocked is wrapped by *LockedError.
var ErrLocked = errors.New("another run holds the lock")

// LockedError says who holds the lock (as the holder recorded it).
type LockedError struct {
	Path   string
	Holder string // e.g. "pid=123 command=run since=2026-..."
}

func (e *LockedError) Error() string {
	h := e.Holder
	if h == "" {
		h = "unknown holder"
	}
	return fmt.Sprintf("lock %s held by %s", e.Path, h)
}
func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is a held flock on the state directory's lock file. The kernel drops it
// when the process dies, so a crash never leaves a stale lock.
type Lock struct {
	f *os.File
}

// AcquireLock takes an exclusive flock on path, polling until wait has passed
// (0 = try once). It records the holder (pid, command, time) in the file.
func AcquireLock(ctx context.Context, path, command string, wait time.Duration) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			holder, _ := io.ReadAll(io.LimitReader(f, 512))
			f.Close()
			return nil, &LockedError{Path: path, Holder: strings.TrimSpace(string(holder))}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	rec := fmt.Sprintf("pid=%d command=%s since=%s\n", os.Getpid(), command, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(rec), 0)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	cerr := l.f.Close()
	l.f = nil
	return errors.Join(err, cerr)
}
