package systemdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"github.com/t3fleet/t3fleet/internal/realtest"
)

// Defaults for Options.
const (
	DefaultSystemd      = "/lib/systemd/systemd"
	DefaultStartTimeout = 15 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	// EnvRequireReal, set to "1", turns every skip for a missing part into a
	// test failure.
	EnvRequireReal = realtest.Env
	// CgroupPrefix starts the name of every cgroup directory a UserManager
	// creates; a leftover one is recognisable (and removed by the next Start
	// once its owner process is gone).
	CgroupPrefix = "t3fleet-sdtest-"
)

// Options configures Start. The zero value works.
type Options struct {
	// Systemd is the systemd binary; DefaultSystemd when empty.
	Systemd string
	// Units are extra unit files (name -> content) written before the
	// manager starts.
	Units map[string]string
	// StartTimeout bounds the wait for the manager to answer.
	StartTimeout time.Duration
	// StopTimeout bounds the wait for a clean exit before Close kills.
	StopTimeout time.Duration
}

// UserManager is a running `systemd --user` in a private mount namespace,
// seeing only the units in UnitDir.
type UserManager struct {
	Dir        string // holds everything below; removed by Close
	RuntimeDir string // the manager's XDG_RUNTIME_DIR
	UnitDir    string // the manager's only unit directory
	LogDir     string // where services written by WriteService log
	Socket     string // the manager's private D-Bus socket
	PID        int    // the manager's (host) PID

	name    string
	cgroups []string
	cmd     *exec.Cmd
	exited  chan struct{}
	conn    *sddbus.Conn
	stopTO  time.Duration
	once    sync.Once
	closeEr error
}

// Start starts a user manager for the test and registers its Close with
// tb.Cleanup. It skips the test when this machine cannot run one (not root,
// no systemd, no unshare, no writable cgroup tree), and fails it instead when
// EnvRequireReal is "1". A manager that is there but will not start fails
// the test.
func Start(tb testing.TB, opts Options) *UserManager {
	tb.Helper()
	if opts.Systemd == "" {
		opts.Systemd = DefaultSystemd
	}
	if err := Available(opts.Systemd); err != nil {
		realtest.Missing(tb, "no real systemd user manager: %v", err)
	}
	m, err := start(opts)
	if m != nil {
		tb.Cleanup(func() {
			if err := m.Close(); err != nil {
				tb.Errorf("systemdtest: %v", err)
			}
		})
		tb.Cleanup(func() {
			if tb.Failed() {
				tb.Logf("systemd --user log:\n%s", m.ManagerLog())
			}
		})
	}
	if err != nil {
		tb.Fatalf("systemdtest: %v", err)
	}
	return m
}

// Available reports why a user manager cannot be started here, or nil.
func Available(systemd string) error {
	if os.Geteuid() != 0 {
		return errors.New("not root (the cgroup and mount setup needs it)")
	}
	if fi, err := os.Stat(systemd); err != nil || fi.IsDir() {
		return fmt.Errorf("no %s", systemd)
	}
	for _, tool := range []string{"unshare", "mount", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("no %s in PATH", tool)
		}
	}
	if len(cgroupRoots()) == 0 {
		return errors.New("no writable cgroup hierarchy under /sys/fs/cgroup")
	}
	return nil
}

// cgroupRoots returns the hierarchies a user manager needs a directory in:
// name=systemd and the unified one on a hybrid machine, the root on a
// cgroup2-only one.
func cgroupRoots() []string {
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	var roots []string
	switch {
	case exists("/sys/fs/cgroup/cgroup.controllers"):
		roots = []string{"/sys/fs/cgroup"}
	case exists("/sys/fs/cgroup/systemd/cgroup.procs"):
		roots = []string{"/sys/fs/cgroup/systemd"}
		if exists("/sys/fs/cgroup/unified/cgroup.procs") {
			roots = append(roots, "/sys/fs/cgroup/unified")
		}
	}
	for _, r := range roots {
		if syscall.Access(r, 2 /* W_OK */) != nil {
			return nil
		}
	}
	return roots
}

// launch is the only shell text: fixed, with the systemd path and cgroup
// directories as positional arguments. It runs inside the new mount
// namespace, so the tmpfs and the marker never touch the host's /run.
const launch = `set -e
sd=$1; shift
for d in "$@"; do echo $$ > "$d/cgroup.procs"; done
[ -d /run/systemd ] || mkdir -p /run/systemd
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir /run/systemd/system
exec "$sd" --user`

func start(opts Options) (*UserManager, error) {
	dir, err := shortTempDir()
	if err != nil {
		return nil, err
	}
	m := &UserManager{
		Dir:        dir,
		RuntimeDir: filepath.Join(dir, "run"),
		UnitDir:    filepath.Join(dir, "units"),
		LogDir:     filepath.Join(dir, "logs"),
		name:       CgroupPrefix + strconv.Itoa(os.Getpid()) + "-" + randHex(4),
		exited:     make(chan struct{}),
		stopTO:     opts.StopTimeout,
	}
	if m.stopTO <= 0 {
		m.stopTO = DefaultStopTimeout
	}
	m.Socket = filepath.Join(m.RuntimeDir, "systemd", "private")
	close(m.exited) // until a process runs, Close has nothing to wait for
	for _, d := range []string{m.RuntimeDir, m.UnitDir, m.LogDir, filepath.Join(dir, "nogen"), filepath.Join(dir, "home")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return m, err
		}
	}
	units := standIns()
	for n, c := range opts.Units {
		units[n] = c
	}
	for n, c := range units {
		if err := writeUnitFile(m.UnitDir, n, c); err != nil {
			return m, err
		}
	}
	removeStaleCgroups()
	for _, root := range cgroupRoots() {
		d := filepath.Join(root, m.name)
		if err := os.Mkdir(d, 0o755); err != nil {
			return m, fmt.Errorf("cgroup: %w", err)
		}
		m.cgroups = append(m.cgroups, d)
	}

	logf, err := os.Create(filepath.Join(dir, "manager.log"))
	if err != nil {
		return m, err
	}
	defer logf.Close()
	args := append([]string{"--mount", "--propagation", "private", "sh", "-c", launch, "sh", opts.Systemd}, m.cgroups...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = m.env()
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own session, so a terminal's signals go to the test, not the manager;
	// SIGTERM makes a user manager exit cleanly should the test die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return m, fmt.Errorf("start systemd --user: %w", err)
	}
	m.cmd, m.PID = cmd, cmd.Process.Pid
	m.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(m.exited) }()

	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := m.waitReady(ctx); err != nil {
		return m, err
	}
	return m, nil
}

// env is the manager's environment: the test's, minus anything that would
// tie it to another manager or bus, plus the restricted paths.
func (m *UserManager) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "SYSTEMD_"), strings.HasPrefix(k, "LISTEN_"), strings.HasPrefix(k, "XDG_"),
			k == "NOTIFY_SOCKET", k == "DBUS_SESSION_BUS_ADDRESS", k == "INVOCATION_ID", k == "MANAGERPID", k == "HOME":
			continue
		}
		env = append(env, kv)
	}
	nogen := filepath.Join(m.Dir, "nogen")
	home := filepath.Join(m.Dir, "home")
	return append(env,
		"HOME="+home,
		"XDG_RUNTIME_DIR="+m.RuntimeDir,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		"XDG_STATE_HOME="+filepath.Join(home, ".local", "state"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"SYSTEMD_UNIT_PATH="+m.UnitDir,
		"SYSTEMD_GENERATOR_PATH="+nogen,
		"SYSTEMD_ENVIRONMENT_GENERATOR_PATH="+nogen,
		"SYSTEMD_LOG_TARGET=console",
		"SYSTEMD_LOG_LEVEL=info",
		"SYSTEMD_LOG_COLOR=0",
	)
}

// waitReady polls the private socket until the manager has finished
// starting up, or fails early when it exits.
func (m *UserManager) waitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if conn, err := dialSocket(m.Socket); err == nil {
			p, err := conn.SystemStateContext(ctx)
			if err == nil {
				if s := strings.Trim(p.Value.String(), `"`); s == "running" || s == "degraded" {
					m.conn = conn
					return nil
				}
				err = fmt.Errorf("state %s", p.Value.String())
			}
			conn.Close()
			last = err
		} else {
			last = err
		}
		select {
		case <-m.exited:
			return fmt.Errorf("systemd --user exited while starting: %s", lastLines(m.ManagerLog(), 20))
		case <-ctx.Done():
			return fmt.Errorf("systemd --user not ready: %w (last: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// dialSocket connects to a manager's private socket as the calling uid,
// with no bus daemon and so no Hello.
func dialSocket(path string) (*sddbus.Conn, error) {
	uid := strconv.Itoa(os.Getuid())
	return sddbus.NewConnection(func() (*godbus.Conn, error) {
		c, err := godbus.Dial("unix:path=" + path)
		if err != nil {
			return nil, err
		}
		if err := c.Auth([]godbus.Auth{godbus.AuthExternal(uid)}); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	})
}

// Dial returns a new go-systemd connection to the manager; the caller
// closes it.
func (m *UserManager) Dial() (*sddbus.Conn, error) { return dialSocket(m.Socket) }

// Env returns what `systemctl --user` needs to reach this manager from the
// host (XDG_RUNTIME_DIR), appended to the test's environment.
func (m *UserManager) Env() []string {
	return append(os.Environ(), "XDG_RUNTIME_DIR="+m.RuntimeDir)
}

// ManagerLog returns what the manager printed so far.
func (m *UserManager) ManagerLog() string {
	b, _ := os.ReadFile(filepath.Join(m.Dir, "manager.log"))
	return string(b)
}

// Reload makes the manager re-read its unit files (daemon-reload).
func (m *UserManager) Reload(ctx context.Context) error {
	if m.conn == nil {
		return errors.New("manager not running")
	}
	return m.conn.ReloadContext(ctx)
}

// Close asks the manager to exit (exit.target, which stops every unit
// first), waits for it, kills what is left if it does not, and removes its
// cgroup directories and Dir. It reports a process that had to be killed.
// Calling it again returns the first result.
func (m *UserManager) Close() error {
	m.once.Do(func() { m.closeEr = m.close() })
	return m.closeEr
}

func (m *UserManager) close() error {
	var errs []error
	if m.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.stopTO)
		// The reply may never come: the manager exits under our feet.
		_, _ = m.conn.StartUnitContext(ctx, "exit.target", "replace-irreversibly", nil)
		cancel()
		m.conn.Close()
	}
	if m.cmd != nil {
		select {
		case <-m.exited:
		case <-time.After(m.stopTO):
			errs = append(errs, fmt.Errorf("systemd --user (pid %d) did not exit in %s; killed", m.PID, m.stopTO))
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
	}
	if n := killCgroups(m.cgroups); n > 0 {
		errs = append(errs, fmt.Errorf("%d processes were left in %s; killed", n, m.name))
	}
	if err := removeCgroups(m.cgroups, m.stopTO); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(m.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func shortTempDir() (string, error) {
	// A unix socket path must fit in 108 bytes: keep Dir short even when
	// TMPDIR is long.
	base := os.TempDir()
	if len(base) > 60 {
		base = "/tmp"
	}
	removeStaleDirs(base)
	return os.MkdirTemp(base, tempPrefix+strconv.Itoa(os.Getpid())+"-")
}

// tempPrefix starts the name of every Dir, followed by the owner's pid.
const tempPrefix = "t3sd-"

// removeStaleDirs removes the Dirs of test processes that died before their
// cleanup ran (their managers got SIGTERM through Pdeathsig and exited).
func removeStaleDirs(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, tempPrefix+"*-*"))
	for _, d := range dirs {
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), tempPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
