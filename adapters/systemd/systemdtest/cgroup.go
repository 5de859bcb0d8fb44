package systemdtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupProcs returns the PIDs in a cgroup directory and all below it.
func cgroupProcs(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// killCgroups SIGKILLs whatever still runs in the directories and returns
// how many processes it found.
func killCgroups(dirs []string) int {
	n := 0
	for _, d := range dirs {
		for _, pid := range cgroupProcs(d) {
			n++
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return n
}

// removeCgroups removes the directory trees deepest first, retrying until
// timeout while killed processes finish leaving them.
func removeCgroups(dirs []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, d := range dirs {
		for {
			err := removeCgroupTree(d)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("remove cgroup %s: %w", d, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func removeCgroupTree(dir string) error {
	var sub []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			sub = append(sub, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Deepest first: a cgroup directory goes only once it has no children.
	sort.Slice(sub, func(i, j int) bool { return len(sub[i]) > len(sub[j]) })
	for _, p := range sub {
		if err := syscall.Rmdir(p); err != nil && !errors.Is(err, syscall.ENOENT) {
			return err
		}
	}
	return nil
}

// removeStaleCgroups removes empty cgroup directories left by a test
// process that died before its cleanup ran. Directories of live processes
// and directories still holding processes are left alone.
func removeStaleCgroups() {
	for _, root := range cgroupRoots() {
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			rest, ok := strings.CutPrefix(e.Name(), CgroupPrefix)
			if !ok || !e.IsDir() {
				continue
			}
			pidStr, _, _ := strings.Cut(rest, "-")
			pid, err := strconv.Atoi(pidStr)
			if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
				continue
			}
			d := filepath.Join(root, e.Name())
			if len(cgroupProcs(d)) == 0 {
				_ = removeCgroupTree(d)
			}
		}
	}
}
