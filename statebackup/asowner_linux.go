//go:build linux

package statebackup

import (
	"fmt"
	"os"
	"runtime"
	"slices"

	"golang.org/x/sys/unix"
)

// AsOwner runs fn with o's filesystem rights (setfsuid/setfsgid, on one OS
// thread locked to a goroutine of its own) when this process is root and o
// is not; otherwise it just runs fn. Only file access changes, and only on
// fn's own goroutine: work fn hands to another runs with root's rights.
// Files fn opens stay open, and usable by anyone, after it returns.
//
// Use it for any open by path under a tree a user owns. SQLite opens a
// database, its -wal and -shm by path; the user owns the directories on
// that path and can swap one for a symlink into another user's tree
// between a check (or SQLite's own lstat walk under SQLITE_OPEN_NOFOLLOW)
// and the open: root would then read, or write, that user's database.
// Opened with the user's own rights, the swap reaches nothing the user
// could not reach anyway.
//
// Root's supplementary groups are dropped on that thread for fn too
// (setgroups on it alone, as x/sys/unix makes the call): with group root
// among them, fn would read what group root may. A thread whose rights
// cannot be put back is never reused: its goroutine exits still locked,
// which ends it.
func AsOwner(o Owner, fn func() error) error {
	if os.Geteuid() != 0 || o.UID < 0 || o.GID < 0 || o.UID == 0 {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		groups, err := unix.Getgroups()
		if err != nil {
			runtime.UnlockOSThread() // nothing changed yet
			done <- fmt.Errorf("getgroups: %w", err)
			return
		}
		if len(groups) > 0 {
			if err := unix.Setgroups(nil); err != nil {
				done <- fmt.Errorf("setgroups: %w", err)
				return // the thread dies with the goroutine
			}
		}
		// setfsgid/setfsuid return the previous value and no error; a
		// second call with -1 (invalid: no change) reads the current one.
		unix.SetfsgidRetGid(o.GID)
		unix.SetfsuidRetUid(o.UID)
		if g, _ := unix.SetfsgidRetGid(-1); g != o.GID {
			done <- fmt.Errorf("setfsgid %d: still %d", o.GID, g)
			return
		}
		if u, _ := unix.SetfsuidRetUid(-1); u != o.UID {
			done <- fmt.Errorf("setfsuid %d: still %d", o.UID, u)
			return
		}
		if now, err := unix.Getgroups(); err != nil || len(now) != 0 {
			done <- fmt.Errorf("setgroups: still %v (%v)", now, err)
			return
		}
		err = fn()
		unix.SetfsuidRetUid(0)
		unix.SetfsgidRetGid(0)
		u, _ := unix.SetfsuidRetUid(-1)
		g, _ := unix.SetfsgidRetGid(-1)
		var serr error
		if len(groups) > 0 {
			serr = unix.Setgroups(groups)
		}
		back, gerr := unix.Getgroups()
		if u == 0 && g == 0 && serr == nil && gerr == nil && slices.Equal(back, groups) {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}
