package t3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/internal/realtest"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// checkWithin runs hc.Check and fails t when it has not returned by d: a
// check the build or the seed can hold forever hangs the root updater.
func checkWithin(t *testing.T, ctx context.Context, d time.Duration, hc *t3.HealthChecker, b rollout.Build, seed string) (passed bool, reason string, err error) {
	t.Helper()
	type result struct {
		passed bool
		reason string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := hc.Check(ctx, b, seed)
		done <- result{rep.Passed, rep.Reason, err}
	}()
	select {
	case r := <-done:
		return r.passed, r.reason, r.err
	case <-time.After(d):
		t.Fatalf("the check had not returned after %s", d)
		return false, "", nil
	}
}

// awaitFile returns what the file at path holds once it is there, polling
// until d has passed: a build run as another user says where it is (its
// tree, its port) in such a file, written whole by a rename.
func awaitFile(path string, d time.Duration) ([]byte, error) {
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile(path)
		if err == nil || time.Now().After(deadline) {
			return b, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A build run as a user gets nothing of the root updater's own state: not
// its working directory (a directory under one the user cannot pass, from
// which relative paths would reach root's files) and not its environment
// (whatever secrets root's unit or shell holds: the user reads their own
// processes' environment in /proc).
func TestHealthCheckBuildGetsNothingOfRootsAmbientState(t *testing.T) {
	realtest.NeedRoot(t)
	const secret = "root-only-7f3a"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T)
		probe string // sh, appending what it reaches to $marks/leak
	}{
		{"working directory", func(t *testing.T) {
			work := filepath.Join(t.TempDir(), "work") // under root's 0700
			require.NoError(t, os.Mkdir(work, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(work, "notes"), []byte(secret+"\n"), 0o644))
			t.Chdir(work)
		}, `cat notes >> "$marks/leak" 2>/dev/null`},
		{"environment", func(t *testing.T) {
			t.Setenv("T3FLEET_TEST_TOKEN", secret)
		}, `env >> "$marks/leak"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marks := marksDir(t)
			b := wrapBuild(t, stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{}),
				fmt.Sprintf(`marks='%s'; echo "$1" >> "$marks/steps"; %s`, marks, tc.probe))
			seed := seedSnapshot(t, t3test.EraC)
			require.NoError(t, os.Chown(seed, 4242, 4242))
			tempDir := t3test.SharedDir(t)
			tc.setup(t)
			hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: tempDir, ReadyTimeout: 30 * time.Second})

			rep, err := hc.Check(context.Background(), b, seed)
			require.NoError(t, err)
			require.True(t, rep.Passed, rep.Reason)
			steps, err := os.ReadFile(filepath.Join(marks, "steps"))
			require.NoError(t, err)
			require.Equal(t, "serve\nauth\n", string(steps), "both steps probed")
			leak, _ := os.ReadFile(filepath.Join(marks, "leak"))
			assert.False(t, strings.Contains(string(leak), secret), "the build, run as uid 4242, reached root's %s", tc.name)
		})
	}
}

// A serve may leave the process group the check gave it (setpgid into
// another group of its session). The check's stop must still end it, not
// wait for it forever: that would hang the root updater, the scratch
// never removed.
func TestHealthCheckStopsAServeThatLeftItsGroup(t *testing.T) {
	realtest.NeedRoot(t)
	if _, err := os.Stat("/usr/bin/perl"); err != nil {
		realtest.Missing(t, "needs /usr/bin/perl to call setpgid from the build")
	}
	for _, tc := range []struct {
		name  string
		runAs *statebackup.Owner
	}{
		{"as the seed's owner", nil},
		{"as root (RunAs uid 0: the attributes of a checker not run as root)", &statebackup.Owner{UID: 0, GID: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marks := marksDir(t)
			inner := stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{})
			// The serve moves itself into the group of its parent (the
			// checker), then runs the build.
			b := wrapBuild(t, inner, fmt.Sprintf(`if [ "$1" = serve ]; then
  echo $$ > '%s/pid'
  exec /usr/bin/perl -e 'setpgrp(0, getpgrp(getppid())) or warn "setpgid: $!\n"; exec @ARGV or die "exec: $!\n"' -- '%s' "$@"
fi`, marks, inner.Bin))
			t.Cleanup(func() { // a serve the check failed to end is ours to end
				if b, err := os.ReadFile(filepath.Join(marks, "pid")); err == nil {
					if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			})
			seed := seedSnapshot(t, t3test.EraC)
			require.NoError(t, os.Chown(seed, 4242, 4242))
			hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t), ReadyTimeout: 30 * time.Second,
				StopGrace: 500 * time.Millisecond, RunAs: tc.runAs})

			passed, reason, err := checkWithin(t, context.Background(), 30*time.Second, hc, b, seed)
			require.NoError(t, err)
			assert.True(t, passed, reason)
		})
	}
}

// From the serve's start the scratch tree is the build user's, and the
// scratch dir lets every user through (0711): what the serve writes there
// with an ordinary umask (its log, a new database) must still be closed to
// every other user of the host, as the seed's own directory is.
func TestHealthCheckScratchIsClosedToOtherUsers(t *testing.T) {
	realtest.NeedRoot(t)
	marks := marksDir(t)
	// The mint step (the serve is up and has written its log) says where
	// the tree is, then waits for the other user's attempt.
	b := wrapBuild(t, stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{}), fmt.Sprintf(`if [ "$1" = auth ]; then
  echo "$base" > '%[1]s/base.tmp' && mv '%[1]s/base.tmp' '%[1]s/base'
  i=0; while [ ! -e '%[1]s/tried' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
fi`, marks))
	seed := seedSnapshot(t, t3test.EraC)
	require.NoError(t, os.Chown(seed, 4242, 4242))
	hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t), ReadyTimeout: 30 * time.Second})

	other := statebackup.Owner{UID: 4299, GID: 4299}
	tried := make(chan error, 1)
	go func() {
		defer func() { _ = os.WriteFile(filepath.Join(marks, "tried"), nil, 0o644) }()
		base, err := awaitFile(filepath.Join(marks, "base"), 20*time.Second)
		if err != nil {
			tried <- fmt.Errorf("the mint never said where the tree is: %w", err)
			return
		}
		log := t3test.LogPath(strings.TrimSpace(string(base)))
		if _, err := os.Stat(log); err != nil {
			tried <- fmt.Errorf("the serve wrote no log at %s: %w", log, err)
			return
		}
		tried <- statebackup.AsOwner(other, func() error {
			b, err := os.ReadFile(log)
			if err == nil {
				return fmt.Errorf("uid %d read %d bytes of %s", other.UID, len(b), log)
			}
			if !errors.Is(err, os.ErrPermission) {
				return fmt.Errorf("uid %d: %w", other.UID, err)
			}
			return nil
		})
	}()

	rep, err := hc.Check(context.Background(), b, seed)
	require.NoError(t, err)
	require.True(t, rep.Passed, rep.Reason)
	require.NoError(t, <-tried, "another user reached the serve's files in the scratch tree")
}

// The seed is the user's data, SQL included: a trigger that never ends,
// fired by the check's own quiescing of the copy (run as root, before the
// build starts), must not hold the root updater past its context.
func TestHealthCheckEndsOnASeedThatNeverAnswers(t *testing.T) {
	realtest.NeedRoot(t) // the seed is another user's
	seed := seedSnapshot(t, t3test.EraC)
	conn, err := sqlite.OpenConn(seed, sqlite.OpenReadWrite)
	require.NoError(t, err)
	require.NoError(t, sqlitex.ExecuteScript(conn, `
		UPDATE projection_turns SET state = 'running' WHERE rowid = (SELECT min(rowid) FROM projection_turns);
		CREATE TRIGGER spin AFTER UPDATE ON projection_turns BEGIN
			SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c);
		END;`, nil))
	require.NoError(t, conn.Close())
	require.NoError(t, os.Chown(seed, 4242, 4242))
	b := stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{})
	hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t), ReadyTimeout: 30 * time.Second})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	passed, reason, err := checkWithin(t, ctx, 20*time.Second, hc, b, seed)
	assert.False(t, passed)
	require.Error(t, err, "no verdict on the build (reason: %s)", reason)
}

// ttyHelperEnv, set, makes TestHealthCheckBuildCannotReachRootsTerminal
// the checker run on a terminal: it names the directory for marks.
const ttyHelperEnv = "T3FLEET_TEST_TTY_MARKS"

// Run from a terminal (by hand, over sudo), the root updater must not hand
// it to the build: a process of the user's in root's session opens
// /dev/tty, reads what root types and, where TIOCSTI is allowed, types
// into root's shell.
func TestHealthCheckBuildCannotReachRootsTerminal(t *testing.T) {
	realtest.NeedRoot(t)
	if marks := os.Getenv(ttyHelperEnv); marks != "" {
		// The checker, on the terminal the parent test gave it.
		b := wrapBuild(t, stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{}),
			fmt.Sprintf(`echo "$1" >> '%[1]s/steps'; if (true </dev/tty) 2>/dev/null; then echo "$1" >> '%[1]s/tty'; fi`, marks))
		seed := seedSnapshot(t, t3test.EraC)
		require.NoError(t, os.Chown(seed, 4242, 4242))
		hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t), ReadyTimeout: 30 * time.Second})
		rep, err := hc.Check(context.Background(), b, seed)
		require.NoError(t, err)
		require.True(t, rep.Passed, rep.Reason)
		return
	}
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		realtest.Missing(t, "no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	require.NoError(t, unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	require.NoError(t, err)
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	defer pts.Close()
	go func() { _, _ = io.Copy(io.Discard, ptmx) }() // the helper's output

	marks := marksDir(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), ttyHelperEnv+"="+marks)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	require.NoError(t, cmd.Run(), "the checker on a terminal: %s", out.String())

	steps, err := os.ReadFile(filepath.Join(marks, "steps"))
	require.NoError(t, err)
	require.Equal(t, "serve\nauth\n", string(steps), "both steps probed")
	reached, _ := os.ReadFile(filepath.Join(marks, "tty"))
	assert.Empty(t, string(reached), "steps that opened root's terminal")
}

// The serve's port is picked free, then let go until the serve binds it,
// and its command line (port included) is in /proc for every user to read:
// another user can bind it first. Their listener must not be taken for the
// build's: it would answer for it, and a good build would fail on what it
// answered (a dead end), or a bad one pass. The serve that lost its port
// gets another.
func TestHealthCheckIgnoresAnotherUsersListener(t *testing.T) {
	realtest.NeedRoot(t)
	marks := marksDir(t)
	// The first serve, as a real one does, takes a while to bind: the
	// squatter (the test, as root) gets there first, and the serve waits
	// until the checker has asked the squatter whether it is ready.
	b := wrapBuild(t, stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{}), fmt.Sprintf(`if [ "$1" = serve ] && mkdir '%[1]s/once' 2>/dev/null; then
  prev=; for a in "$@"; do [ "$prev" = --port ] && port=$a; prev=$a; done
  echo "$port" > '%[1]s/port.tmp' && mv '%[1]s/port.tmp' '%[1]s/port'
  i=0; while [ ! -e '%[1]s/probed' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
fi`, marks))
	seed := seedSnapshot(t, t3test.EraC)
	require.NoError(t, os.Chown(seed, 4242, 4242))
	hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t), ReadyTimeout: 30 * time.Second})

	squatted := make(chan error, 1)
	go func() {
		probed := func() { _ = os.WriteFile(filepath.Join(marks, "probed"), nil, 0o644) }
		port, err := awaitFile(filepath.Join(marks, "port"), 20*time.Second)
		if err != nil {
			probed() // no squatter: the serve waits no more
			squatted <- fmt.Errorf("the serve never said its port: %w", err)
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strings.TrimSpace(string(port)))
		if err != nil {
			probed()
			squatted <- err
			return
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == t3.EnvironmentPath {
				_, _ = io.WriteString(w, `{"serverVersion":"0.0.30"}`)
				probed()
				return
			}
			http.Error(w, "squatted", http.StatusInternalServerError)
		})}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
		squatted <- nil
	}()

	rep, err := hc.Check(context.Background(), b, seed)
	require.NoError(t, <-squatted, "the squatter bound the serve's port")
	require.False(t, err == nil && !rep.Passed, "a good build failed on another user's listener: %s", rep.Reason)
	require.NoError(t, err)
	assert.True(t, rep.Passed, rep.Reason)
}
