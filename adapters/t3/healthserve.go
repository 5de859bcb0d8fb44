package t3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/rollout"
)

// serveAttempts is how many ports the throwaway serve is given before the
// check gives up: a port picked free can be taken by another process before
// the serve binds it, which says nothing about the build.
const serveAttempts = 3

// serveProc is the throwaway `t3 serve` of one check.
type serveProc struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error // once exited is closed
	out     *boundedBuffer
	base    string  // its base dir
	run     *runner // who it runs as
	port    int
	stolen  string // another user's listener found on port (waitReady)
	baseURL string
	client  *http.Client
}

// logs is what the serve printed, then its log files (read with its
// user's rights).
func (sp *serveProc) logs() string { return sp.out.String() + sp.run.readLogs(sp.base) }

// startReady starts the build's serve on base and waits until it answers.
// A nil serveProc comes with the build's verdict (a failed report, nil
// error), or with an error when the check could not run: no free port, or
// the port taken by another process serveAttempts times in a row.
func (h *HealthChecker) startReady(ctx context.Context, b rollout.Build, base string, run *runner, env []string) (*serveProc, rollout.HealthReport, error) {
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, rollout.HealthReport{}, fmt.Errorf("free port: %w", err)
		}
		sp := &serveProc{exited: make(chan struct{}), out: &boundedBuffer{max: maxServeOutput}, base: base, run: run, port: port,
			baseURL: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			client:  &http.Client{Timeout: h.opts.RequestTimeout}}
		argv := append([]string{b.Bin, "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--base-dir", base}, h.opts.ServeArgs...)
		sp.cmd = exec.Command(argv[0], argv[1:]...)
		sp.cmd.Env = env
		sp.cmd.Stdout, sp.cmd.Stderr = sp.out, sp.out
		sp.cmd.SysProcAttr = run.procAttr()
		sp.cmd.Dir = run.dir()
		// A child in a session of its own escapes the group's signals and
		// may hold the output pipe: Wait stops waiting for it a second
		// after the serve itself has ended.
		sp.cmd.WaitDelay = time.Second
		h.log.Info("health check serve", "version", b.Version, "argv", argv, "as", run.String())
		if err := sp.cmd.Start(); err != nil {
			if run.cannotRun(err) {
				return nil, fail("serve did not start: %v", err), fmt.Errorf("the build runs as %s, who cannot run it: %w (the staged build must be open to every user, as the shared t3 is, and the user one this process can become)", run, err)
			}
			if hostShortOf(err) {
				return nil, fail("serve did not start: %v", err), fmt.Errorf("serve could not be started: %w", err)
			}
			return nil, fail("serve did not start: %v", err), nil
		}
		go func() { sp.waitErr = sp.cmd.Wait(); close(sp.exited) }()
		rep, ok := h.waitReady(ctx, sp)
		if ok {
			return sp, rep, nil
		}
		h.stop(sp)
		if sp.stolen == "" && !portTaken(sp.out.String()) {
			return nil, rep, nil
		}
		if attempt == serveAttempts {
			last := lastLine(sp.out.String())
			if sp.stolen != "" {
				last = "another user's listener " + sp.stolen
			}
			err := fmt.Errorf("serve lost its port to another process %d times: %s", attempt, last)
			return nil, fail("%v", err), err
		}
		h.log.Warn("health check serve lost its port to another process; again on another", "port", port, "attempt", attempt)
	}
}

// portTaken reports a serve that could not bind its port: the system's
// words as Go and Node print them, or a port said to be in use ("Port N on
// H is already in use", as an open upstream change, t3code #7703, has t3
// serve say it).
func portTaken(out string) bool {
	low := strings.ToLower(out)
	return strings.Contains(low, "address already in use") || strings.Contains(out, "EADDRINUSE") ||
		portInUse.MatchString(low)
}

// scratchShort returns the first line of text that says the disk the
// check writes to is full or failing (SQLite's words, the system's, Node's
// error codes), "" when none does: the host's fault, never the build's.
func scratchShort(text string) string {
	for _, line := range strings.Split(text, "\n") {
		low := strings.ToLower(line)
		for _, p := range []string{"database or disk is full", "sqlite_full", "no space left on device", "enospc",
			"disk quota exceeded", "edquot", "disk i/o error", "input/output error", "sqlite_ioerr"} {
			if strings.Contains(low, p) {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

var portInUse = regexp.MustCompile(`\bport \d+( on \S+)? is already in use`)

// waitReady polls the environment endpoint until it answers 200, failing
// early on a migration error in the log, on the serve exiting, on ctx or on
// ReadyTimeout. An answer counts only while no other user's listener holds
// the port (the port is let go between its pick and the serve's bind, and
// every user reads it in the serve's command line): one that does is
// noted in sp.stolen, and the serve has lost its port.
func (h *HealthChecker) waitReady(ctx context.Context, sp *serveProc) (rollout.HealthReport, bool) {
	deadline := time.NewTimer(h.opts.ReadyTimeout)
	defer deadline.Stop()
	wait := 20 * time.Millisecond
	for {
		if line := matchPattern(sp.logs()); line != "" {
			return fail("log shows a migration error: %s", line), false
		}
		select {
		case <-sp.exited:
			logs := sp.logs() // all it wrote: read once
			if line := matchPattern(logs); line != "" {
				return fail("serve exited (%v): %s", sp.waitErr, line), false
			}
			return fail("serve exited before answering (%v): %s", sp.waitErr, lastLine(logs)), false
		default:
		}
		if _, err := serverVersion(ctx, sp.client, h.opts.RequestTimeout, sp.baseURL); err == nil {
			if l := foreignListener(&hostfiles.TCPTable{}, sp.port, sp.run.uid()); l != "" {
				sp.stolen = l
				return fail("port %d is held by another user's listener, %s", sp.port, l), false
			}
			return rollout.HealthReport{}, true
		}
		select {
		case <-ctx.Done():
			return fail("serve not ready: %v", ctx.Err()), false
		case <-deadline.C:
			return fail("serve not ready within %s", h.opts.ReadyTimeout), false
		case <-sp.exited:
		case <-time.After(wait):
		}
		if wait < 250*time.Millisecond {
			wait *= 2
		}
	}
}

// stop ends the serve's process group: SIGTERM, then SIGKILL after
// StopGrace. The serve itself gets both by its pid as well: run in this
// process's session, it can move itself into another group of it, and the
// wait for it would never end.
func (h *HealthChecker) stop(sp *serveProc) {
	pid := sp.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	_ = sp.cmd.Process.Signal(syscall.SIGTERM) // a pidfd: never another process
	select {
	case <-sp.exited:
	case <-time.After(h.opts.StopGrace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = sp.cmd.Process.Kill()
		<-sp.exited
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // leftovers in the group, if any
}

// foreignListener returns a listening socket on port that a connection to
// 127.0.0.1:port may reach (bound to it, or to the unspecified address)
// whose owner is not uid, as "<address> (uid <n>)", from the socket tables
// of t; "" when there is none, or the tables cannot be read (nothing then
// says the port is another's).
func foreignListener(t *hostfiles.TCPTable, port int, uid uint32) string {
	loopback := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	socks, _ := t.Listeners(uint16(port))
	for _, s := range socks {
		if a := s.Local.Addr().Unmap(); s.UID != uid && (a == loopback || a.IsUnspecified()) {
			return fmt.Sprintf("%s (uid %d)", s.Local, s.UID)
		}
	}
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// boundedBuffer keeps the first max bytes written, safely for two writers,
// and drops the rest (a writer is never stopped: it would block on a full
// pipe).
type boundedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	max     int
	dropped bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if room := max(b.max-b.buf.Len(), 0); n > room {
		b.dropped = true
		p = p[:room]
	}
	b.buf.Write(p)
	return n, nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Bytes returns a copy of what was kept.
func (b *boundedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// Dropped reports whether more was written than kept.
func (b *boundedBuffer) Dropped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// hostShortOf says whether a failed start is the host's (no processes,
// memory or descriptors left), not the build's (a missing or unrunnable
// binary): the check then could not run, and blames nobody.
func hostShortOf(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EAGAIN, syscall.ENOMEM, syscall.EMFILE, syscall.ENFILE} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}
