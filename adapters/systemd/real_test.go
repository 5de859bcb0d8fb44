package systemd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/proctree"
	"github.com/t3fleet/t3fleet/adapters/systemd"
	"github.com/t3fleet/t3fleet/adapters/systemd/systemdtest"
	"github.com/t3fleet/t3fleet/rollout"
)

// startReal starts an isolated user manager with a t3-serve@.service
// template running a long-lived process, and a Manager on its socket.
func startReal(t *testing.T) (*systemdtest.UserManager, *systemd.Manager) {
	t.Helper()
	um := systemdtest.Start(t, systemdtest.Options{})
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	um.WriteService(t, "t3-serve@.service", systemdtest.Service{ExecStart: []string{sleep, "infinity"}})
	um.WriteService(t, "t3-broken@.service", systemdtest.Service{ExecStart: []string{um.Dir + "/no/such/t3", "serve"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := systemd.DialSocket(ctx, um.Socket, systemd.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return um, m
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRealLifecycle(t *testing.T) {
	_, m := startReal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice, bob := rollout.Unit{User: "alice"}, rollout.Unit{User: "bob"}

	units, err := m.Units(ctx)
	require.NoError(t, err)
	require.Empty(t, units)

	before := time.Now().Add(-time.Second)
	require.NoError(t, m.Start(ctx, alice))
	require.NoError(t, m.Start(ctx, bob))

	units, err = m.Units(ctx)
	require.NoError(t, err)
	require.Len(t, units, 2)
	assert.Equal(t, "t3-serve@alice.service", units[0].Name)
	assert.Equal(t, "alice", units[0].User)
	assert.Equal(t, "active", units[0].Fields["ActiveState"])
	assert.Equal(t, "bob", units[1].User)

	st, err := m.Status(ctx, alice)
	require.NoError(t, err)
	assert.True(t, st.Active)
	assert.Equal(t, "active", st.State)
	require.True(t, alive(st.MainPID), "MainPID %d is not a live host process", st.MainPID)
	assert.True(t, st.ActiveSince.After(before) && st.ActiveSince.Before(time.Now()), "ActiveSince %v", st.ActiveSince)

	// Restart: a new process, a later ActiveSince, the old process gone.
	require.NoError(t, m.Restart(ctx, units[0])) // as Units returned it: Name and User
	st2, err := m.Status(ctx, alice)
	require.NoError(t, err)
	assert.True(t, st2.Active)
	assert.NotEqual(t, st.MainPID, st2.MainPID)
	require.True(t, alive(st2.MainPID))
	assert.True(t, st2.ActiveSince.After(st.ActiveSince), "ActiveSince %v then %v", st.ActiveSince, st2.ActiveSince)
	eventually(t, "old MainPID gone", func() bool { return !alive(st.MainPID) })

	// Stop bob, leave alice alone.
	bobSt, err := m.Status(ctx, bob)
	require.NoError(t, err)
	require.NoError(t, m.Stop(ctx, bob))
	stopped, err := m.Status(ctx, bob)
	require.NoError(t, err)
	assert.Equal(t, rollout.UnitStatus{State: "inactive"}, stopped)
	eventually(t, "bob's process gone", func() bool { return !alive(bobSt.MainPID) })
	require.True(t, alive(st2.MainPID), "stopping bob touched alice")
	require.NoError(t, m.Stop(ctx, bob), "stopping a stopped unit is not an error")

	// And start it again.
	require.NoError(t, m.Start(ctx, bob))
	again, err := m.Status(ctx, bob)
	require.NoError(t, err)
	assert.True(t, again.Active)
	assert.True(t, alive(again.MainPID))
	assert.NotEqual(t, bobSt.MainPID, again.MainPID)
}

func TestRealFailedStart(t *testing.T) {
	um, _ := startReal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := systemd.DialSocket(ctx, um.Socket, systemd.Options{Template: "t3-broken@.service"})
	require.NoError(t, err)
	defer m.Close()

	err = m.Start(ctx, rollout.Unit{User: "carol"})
	require.ErrorIs(t, err, systemd.ErrJobFailed)
	var je *systemd.JobError
	require.ErrorAs(t, err, &je)
	assert.Equal(t, "t3-broken@carol.service", je.Unit)
	assert.Equal(t, "failed", je.Result)

	st, err := m.Status(ctx, rollout.Unit{User: "carol"})
	require.NoError(t, err)
	assert.Equal(t, "failed", st.State)
	assert.False(t, st.Active)
	assert.Zero(t, st.MainPID)

	require.ErrorIs(t, m.Restart(ctx, rollout.Unit{User: "carol"}), systemd.ErrJobFailed)
}

// A start whose unit condition fails ends "done" with nothing running: no
// running instance. (A start "done" whose process then died is
// TestJobs' "start done but failed" and TestJobDoneButNotRunning,
// over the fake client.)
func TestRealStartDoneButNotRunning(t *testing.T) {
	um, _ := startReal(t)
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	um.WriteUnit(t, "t3-cond@.service", "[Unit]\nConditionPathExists="+um.Dir+"/no/such/env\n\n[Service]\nType=exec\nExecStart="+sleep+" infinity\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := systemd.DialSocket(ctx, um.Socket, systemd.Options{Template: "t3-cond@.service"})
	require.NoError(t, err)
	defer m.Close()

	for _, op := range []func(context.Context, rollout.Unit) error{m.Start, m.Restart} {
		err = op(ctx, rollout.Unit{User: "dana"})
		require.ErrorIs(t, err, systemd.ErrJobFailed)
		var je *systemd.JobError
		require.ErrorAs(t, err, &je)
		assert.Equal(t, "inactive", je.State)
	}
}

// The manager dies while a start job waits in ExecStartPre: the job's
// result never comes, and Restart must say so instead of waiting for ctx.
func TestRealJobEndsWhenTheManagerDies(t *testing.T) {
	um := systemdtest.Start(t, systemdtest.Options{})
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	// The pre-start process outlives its killed manager: it is killed here,
	// before systemdtest's cleanup counts what was left behind.
	pidFile := filepath.Join(um.Dir, "pre.pid")
	um.WriteService(t, "t3-serve@.service", systemdtest.Service{
		ExecStart: []string{sleep, "infinity"},
		Extra:     "ExecStartPre=/bin/sh -c 'echo $$$$ >" + pidFile + "; exec " + sleep + " 60'\n",
	})
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				// A zombie: its reaper died with the manager, and it has
				// left the cgroup.
				eventually(t, "the pre-start process dead", func() bool {
					b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
					_, rest, _ := strings.Cut(string(b), ") ")
					return err != nil || strings.HasPrefix(rest, "Z")
				})
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := systemd.DialSocket(ctx, um.Socket, systemd.Options{ConnCheckInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	defer m.Close()
	u := rollout.Unit{User: "emil"}

	done := make(chan error, 1)
	go func() { done <- m.Restart(ctx, u) }()
	eventually(t, "the start job running", func() bool {
		st, err := m.Status(ctx, u)
		return err == nil && st.State == "activating"
	})
	require.NoError(t, syscall.Kill(um.PID, syscall.SIGKILL))
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Restart still waits 10 s after the manager died")
	}
	require.ErrorIs(t, err, rollout.ErrUnitManager)
	require.NotErrorIs(t, err, context.DeadlineExceeded)
}

func TestRealRefusesHostileNames(t *testing.T) {
	_, m := startReal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, u := range []rollout.Unit{
		{User: "../../etc"}, {User: "x y"}, {User: "Root"}, {Name: "t3-serve@*.service"}, {Name: "dbus.service"},
	} {
		err := m.Start(ctx, u)
		require.Error(t, err, "%+v", u)
		assert.True(t, errors.Is(err, t3fleet.ErrInvalidName) || errors.Is(err, systemd.ErrNotInstance), "%+v: %v", u, err)
	}
	units, err := m.Units(ctx)
	require.NoError(t, err)
	assert.Empty(t, units)
}

// A bad build crash-loops its unit into systemd's start limit; the rollback's
// restart onto a good build must still work.
func TestRealRestartAfterStartLimit(t *testing.T) {
	um := systemdtest.Start(t, systemdtest.Options{})
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	good := filepath.Join(t.TempDir(), "good")
	um.WriteService(t, "t3-serve@.service", systemdtest.Service{
		// Fails until the file exists, like a build that crashes at start.
		ExecStart: []string{"/bin/sh", "-c", `test -e "$1" || exit 1; exec "$2" infinity`, "sh", good, sleep},
		Extra:     "Restart=on-failure\nRestartSec=10ms\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := rollout.Unit{User: "emil"}

	for _, keep := range []bool{true, false} {
		m, err := systemd.DialSocket(ctx, um.Socket, systemd.Options{KeepFailed: keep})
		require.NoError(t, err)
		defer m.Close()
		require.NoError(t, os.RemoveAll(good))
		_ = m.Start(ctx, u) // the process starts, then keeps crashing
		eventually(t, "start limit hit", func() bool {
			st, err := m.Status(ctx, u)
			return err == nil && st.State == "failed"
		})
		require.NoError(t, os.WriteFile(good, nil, 0o644))
		err = m.Restart(ctx, u)
		if keep {
			require.Error(t, err, "systemd refuses a unit past its start limit")
			continue
		}
		require.NoError(t, err)
		st, err := m.Status(ctx, u)
		require.NoError(t, err)
		assert.True(t, st.Active)
		assert.True(t, alive(st.MainPID))
	}
}

// An agent whose parent exited is re-parented out of the serve's tree, but
// stays in the unit's cgroup and dies when the unit stops: the oracle must
// find it through ControlGroup.
func TestRealControlGroupFindsReparentedAgent(t *testing.T) {
	um := systemdtest.Start(t, systemdtest.Options{})
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	b, err := os.ReadFile(sleep)
	require.NoError(t, err)
	claude := filepath.Join(t.TempDir(), "claude")
	require.NoError(t, os.WriteFile(claude, b, 0o755))
	// The subshell starts the agent and exits at once; the main process
	// then becomes sleep.
	um.WriteService(t, "t3-serve@.service", systemdtest.Service{
		ExecStart: []string{"/bin/sh", "-c", `("$1" infinity &); exec "$2" infinity`, "sh", claude, sleep},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := systemd.DialSocket(ctx, um.Socket, systemd.Options{})
	require.NoError(t, err)
	defer m.Close()
	u := rollout.Unit{User: "emil"}

	cg, err := m.ControlGroup(ctx, u)
	require.NoError(t, err)
	assert.Empty(t, cg, "a unit never started has no cgroup")

	require.NoError(t, m.Start(ctx, u))
	st, err := m.Status(ctx, u)
	require.NoError(t, err)
	require.True(t, alive(st.MainPID))
	var agent, parent int
	eventually(t, "the agent re-parented out of the main process's tree", func() bool {
		procs, err := (&proctree.Oracle{}).Processes(ctx)
		require.NoError(t, err)
		agent, parent = 0, 0
		for _, p := range procs {
			if len(p.Args) > 0 && p.Args[0] == claude {
				agent, parent = p.PID, p.PPID
			}
		}
		return agent > 0 && !slices.Contains(ancestors(procs, agent), st.MainPID)
	})
	require.NotEqual(t, st.MainPID, parent)
	t.Logf("main pid %d, agent %d re-parented to %d", st.MainPID, agent, parent)

	cg, err = m.ControlGroup(ctx, u)
	require.NoError(t, err)
	require.NotEmpty(t, cg)
	// Without a cgroup namespace of its own the manager names cgroups as
	// this process reads them in /proc.
	for _, pid := range []int{st.MainPID, agent} {
		assert.Equal(t, []string{cg}, systemdCgroups(t, pid), "pid %d", pid)
	}

	mainPID := func(ctx context.Context, in t3fleet.Instance) (int, error) {
		st, err := m.Status(ctx, rollout.Unit{User: in.OSUser})
		return st.MainPID, err
	}
	in := t3fleet.Instance{OSUser: "emil"}
	v, err := (&proctree.Oracle{MainPID: mainPID}).Idle(ctx, in)
	require.NoError(t, err)
	require.True(t, v.Idle, "the tree alone misses the agent: %s", v.Reason)

	withCgroup := &proctree.Oracle{MainPID: mainPID, Cgroup: func(ctx context.Context, in t3fleet.Instance) (string, error) {
		return m.ControlGroup(ctx, rollout.Unit{User: in.OSUser})
	}}
	v, err = withCgroup.Idle(ctx, in)
	require.NoError(t, err)
	assert.False(t, v.Idle)
	assert.Contains(t, v.Reason, fmt.Sprintf("claude[%d] (in the unit's cgroup, outside the tree)", agent))

	// Why it matters: stopping the unit kills the agent with it.
	require.NoError(t, m.Stop(ctx, u))
	eventually(t, "the agent killed with its unit", func() bool { return !alive(agent) })
	cg, err = m.ControlGroup(ctx, u)
	require.NoError(t, err)
	assert.Empty(t, cg, "a stopped unit has no cgroup")
}

// ancestors returns the parent, grandparent, ... of pid in procs, up to
// PID 1.
func ancestors(procs map[int]proctree.Process, pid int) []int {
	var out []int
	for p := procs[pid].PPID; p > 0 && len(out) < 1000; p = procs[p].PPID {
		out = append(out, p)
	}
	return out
}

// systemdCgroups returns the paths of the hierarchies systemd files units
// under, as /proc/<pid>/cgroup shows them: the cgroup v2 line and cgroup
// v1's name=systemd, whichever the machine has.
func systemdCgroups(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		require.Len(t, parts, 3, line)
		if (parts[0] == "0" && parts[1] == "") || parts[1] == "name=systemd" {
			if !slices.Contains(out, parts[2]) {
				out = append(out, parts[2])
			}
		}
	}
	return out
}
