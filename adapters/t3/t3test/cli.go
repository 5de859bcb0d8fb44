package t3test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// CLIPackage is the import path of the fake t3 CLI.
const CLIPackage = "github.com/t3fleet/t3fleet/adapters/t3/t3test/cmd/t3fake"

// cliBuild caches the one build a test process makes. It is the package's
// only mutable state: a binary shared by every test of the process.
var cliBuild struct {
	once sync.Once
	path string
	err  error
}

// BuildCLI builds the fake t3 CLI once per test process and returns the
// path of the binary (named "t3"). It lives in a per-process directory under
// os.TempDir(); directories left by earlier processes that have exited are
// removed on the next build. Set T3FAKE_VERSION / T3FAKE_ERA / T3FAKE_FAULTS
// in the child's environment, or use WriteBuild, to pick what it plays.
func BuildCLI(tb testing.TB) string {
	tb.Helper()
	cliBuild.once.Do(func() { cliBuild.path, cliBuild.err = buildCLI() })
	if cliBuild.err != nil {
		tb.Fatalf("t3test: build fake CLI: %v", cliBuild.err)
	}
	return cliBuild.path
}

func buildCLI() (string, error) {
	removeStaleBuilds()
	return BuildCLIInto(context.Background(), filepath.Join(os.TempDir(), "t3fake-cli-"+strconv.Itoa(os.Getpid())))
}

// removeStaleBuilds deletes the build directories of test processes that
// have exited.
func removeStaleBuilds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "t3fake-cli-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "t3fake-cli-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

// WriteBuild writes <dir>/t3, a small executable script that runs the fake
// CLI at cli as build version (its era from EraFor) with faults: a stand-in
// for one installed t3 version, e.g. <prefix>/versions/<v>/bin/t3.
func WriteBuild(dir, cli, version string, faults Faults) (string, error) {
	if EraFor(version) == "" {
		return "", fmt.Errorf("write build: %q is not a t3 version", version)
	}
	for _, s := range []string{cli, version, faults.String()} {
		if strings.ContainsAny(s, "'\n") {
			return "", fmt.Errorf("write build: unsupported character in %q", s)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("write build: %w", err)
	}
	bin := filepath.Join(dir, "t3")
	script := "#!/bin/sh\n" +
		"unset T3FAKE_ERA\n" +
		"export T3FAKE_VERSION='" + version + "' T3FAKE_FAULTS='" + faults.String() + "'\n" +
		"exec '" + cli + "' \"$@\"\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		return "", fmt.Errorf("write build: %w", err)
	}
	return bin, nil
}

// SharedDir returns a new directory under os.TempDir() that every user can
// pass through but not list (0711), removed when tb ends. Run as root, the
// health check runs a build as another user (the seed's owner, or nobody),
// who cannot pass t.TempDir()'s 0700: stage builds and give the check its
// TempDir here, as production does under /var/tmp and a 0755 prefix.
func SharedDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "t3test-shared-")
	if err == nil {
		err = os.Chmod(dir, 0o711)
	}
	if err != nil {
		tb.Fatalf("t3test: shared dir: %v", err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
