package supervisor_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/supervisor"
	"github.com/t3fleet/t3fleet/rollout"
)

// helperSpec is a unit running the test binary in mode.
func helperSpec(t *testing.T, user, mode string, env ...string) supervisor.UnitSpec {
	dir := t.TempDir()
	return supervisor.UnitSpec{
		User:    user,
		Argv:    []string{testBinary(t), "--user", user},
		Env:     append([]string{"T3FLEET_SUPERVISOR_HELPER=" + mode}, env...),
		Dir:     dir,
		LogFile: filepath.Join(dir, "out.log"),
	}
}

func newSupervisor(t *testing.T, opts supervisor.Options, specs ...supervisor.UnitSpec) *supervisor.Supervisor {
	t.Helper()
	s, err := supervisor.New(specs, opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func readLog(t *testing.T, spec supervisor.UnitSpec) string {
	t.Helper()
	b, _ := os.ReadFile(spec.LogFile)
	return string(b)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartStatusStop(t *testing.T) {
	ctx := ctxT(t)
	spec := helperSpec(t, "emil", "serve", "T3_VERSION=1.0")
	s := newSupervisor(t, supervisor.Options{}, spec)
	u := rollout.Unit{User: "emil"}

	st, err := s.Status(ctx, u)
	require.NoError(t, err)
	assert.Equal(t, rollout.UnitStatus{State: "inactive"}, st)

	before := time.Now()
	require.NoError(t, s.Start(ctx, u))
	st, err = s.Status(ctx, u)
	require.NoError(t, err)
	assert.True(t, st.Active)
	assert.Equal(t, "active", st.State)
	require.True(t, alive(st.MainPID))
	assert.False(t, st.ActiveSince.Before(before))

	units, err := s.Units(ctx)
	require.NoError(t, err)
	assert.Equal(t, []rollout.Unit{{Name: "t3-serve@emil.service", User: "emil", Fields: map[string]string{"ActiveState": "active"}}}, units)

	eventually(t, "helper output", func() bool { return strings.Contains(readLog(t, spec), "pid=") })
	assert.Contains(t, readLog(t, spec), "serve version=1.0 args=--user,emil dir="+spec.Dir)

	require.NoError(t, s.Stop(ctx, rollout.Unit{Name: "t3-serve@emil.service"}))
	assert.False(t, alive(st.MainPID))
	st2, err := s.Status(ctx, u)
	require.NoError(t, err)
	assert.Equal(t, rollout.UnitStatus{State: "inactive"}, st2)
	assert.Contains(t, readLog(t, spec), "got TERM", "SIGTERM first")
	require.NoError(t, s.Stop(ctx, u), "stopping a stopped unit")
}

func TestStartIsANoOpWhenRunning(t *testing.T) {
	ctx := ctxT(t)
	s := newSupervisor(t, supervisor.Options{}, helperSpec(t, "emil", "serve"))
	u := rollout.Unit{User: "emil"}
	require.NoError(t, s.Start(ctx, u))
	st, _ := s.Status(ctx, u)
	require.NoError(t, s.Start(ctx, u))
	st2, _ := s.Status(ctx, u)
	assert.Equal(t, st, st2)
}

// A restart must run what is current at that moment (the point of a
// side-by-side install with a current link).
func TestRestartRunsTheCurrentCommand(t *testing.T) {
	ctx := ctxT(t)
	var version atomic.Value
	version.Store("0.0.1")
	spec := helperSpec(t, "emil", "serve")
	bin := testBinary(t)
	spec.Argv = nil
	spec.Command = func(context.Context) ([]string, error) {
		return []string{bin, "--version", version.Load().(string)}, nil
	}
	s := newSupervisor(t, supervisor.Options{}, spec)
	u := rollout.Unit{User: "emil"}
	require.NoError(t, s.Start(ctx, u))
	first, _ := s.Status(ctx, u)
	eventually(t, "first run logged", func() bool { return strings.Contains(readLog(t, spec), "args=--version,0.0.1") })

	version.Store("0.0.2")
	require.NoError(t, s.Restart(ctx, u))
	second, _ := s.Status(ctx, u)
	assert.NotEqual(t, first.MainPID, second.MainPID)
	assert.True(t, second.ActiveSince.After(first.ActiveSince))
	assert.False(t, alive(first.MainPID))
	require.True(t, alive(second.MainPID))
	eventually(t, "second run logged", func() bool { return strings.Contains(readLog(t, spec), "args=--version,0.0.2") })
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	ctx := ctxT(t)
	spec := helperSpec(t, "emil", "stubborn")
	s := newSupervisor(t, supervisor.Options{StopTimeout: 300 * time.Millisecond}, spec)
	u := rollout.Unit{User: "emil"}
	require.NoError(t, s.Start(ctx, u))
	st, _ := s.Status(ctx, u)
	eventually(t, "helper up", func() bool { return strings.Contains(readLog(t, spec), "pid=") })
	began := time.Now()
	require.NoError(t, s.Stop(ctx, u))
	assert.GreaterOrEqual(t, time.Since(began), 300*time.Millisecond)
	assert.False(t, alive(st.MainPID))
}

func TestStopKillsTheProcessGroup(t *testing.T) {
	ctx := ctxT(t)
	pidFile := filepath.Join(t.TempDir(), "grandchild")
	s := newSupervisor(t, supervisor.Options{StopTimeout: 5 * time.Second}, helperSpec(t, "emil", "spawn", "HELPER_PID_FILE="+pidFile))
	u := rollout.Unit{User: "emil"}
	require.NoError(t, s.Start(ctx, u))
	var grandchild int
	eventually(t, "grandchild pid", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		grandchild, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	t.Cleanup(func() {
		if alive(grandchild) { // only when the test failed: never leave it behind
			_ = syscall.Kill(grandchild, syscall.SIGKILL)
		}
	})
	require.True(t, alive(grandchild))
	require.NoError(t, s.Stop(ctx, u))
	eventually(t, "grandchild gone", func() bool { return !alive(grandchild) })
}

func TestExitOnItsOwnIsFailed(t *testing.T) {
	ctx := ctxT(t)
	spec := helperSpec(t, "emil", "crash", "HELPER_DELAY=50ms")
	s := newSupervisor(t, supervisor.Options{}, spec)
	u := rollout.Unit{User: "emil"}
	require.NoError(t, s.Start(ctx, u))
	eventually(t, "failed", func() bool { st, _ := s.Status(ctx, u); return st.State == "failed" })
	st, _ := s.Status(ctx, u)
	assert.Equal(t, rollout.UnitStatus{State: "failed"}, st)
	// It can be started again, and a stop clears the failure.
	require.NoError(t, s.Start(ctx, u))
	require.NoError(t, s.Stop(ctx, u))
	st, _ = s.Status(ctx, u)
	assert.Equal(t, "inactive", st.State)
}

func TestUnstartableCommand(t *testing.T) {
	ctx := ctxT(t)
	s := newSupervisor(t, supervisor.Options{}, supervisor.UnitSpec{User: "emil", Argv: []string{filepath.Join(t.TempDir(), "no-such-t3"), "serve"}})
	err := s.Start(ctx, rollout.Unit{User: "emil"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "start t3-serve@emil.service")
	st, _ := s.Status(ctx, rollout.Unit{User: "emil"})
	assert.Equal(t, "failed", st.State)
}

// readyHelper is a serve helper that listens after delay, with a readiness
// check that reads the address it writes.
func readyHelper(t *testing.T, delay string) (supervisor.UnitSpec, func() string) {
	addrFile := filepath.Join(t.TempDir(), "addr")
	spec := helperSpec(t, "emil", "serve", "HELPER_ADDR_FILE="+addrFile, "HELPER_DELAY="+delay, "T3_VERSION=9")
	url := func() string {
		b, _ := os.ReadFile(addrFile)
		return "http://" + string(b) + "/"
	}
	spec.Ready = func(ctx context.Context) error {
		if _, err := os.Stat(addrFile); err != nil {
			return err
		}
		return supervisor.ReadyHTTP(url())(ctx)
	}
	return spec, url
}

func TestStartWaitsForReadiness(t *testing.T) {
	ctx := ctxT(t)
	spec, url := readyHelper(t, "300ms")
	s := newSupervisor(t, supervisor.Options{ReadyInterval: 10 * time.Millisecond}, spec)
	u := rollout.Unit{User: "emil"}

	states := make(chan string, 1)
	go func() {
		// While Start waits, the unit reports activating.
		var seen string
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			st, _ := s.Status(ctx, u)
			if st.State == "activating" {
				seen = st.State
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		states <- seen
	}()
	began := time.Now()
	require.NoError(t, s.Start(ctx, u))
	assert.GreaterOrEqual(t, time.Since(began), 300*time.Millisecond)
	resp, err := http.Get(url())
	require.NoError(t, err, "ready means answering, right when Start returns")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	st, _ := s.Status(ctx, u)
	assert.Contains(t, string(body), "version=9")
	assert.True(t, st.Active)
	assert.Equal(t, "activating", <-states)
}

func TestNotReadyInTime(t *testing.T) {
	ctx := ctxT(t)
	spec, _ := readyHelper(t, "1h")
	s := newSupervisor(t, supervisor.Options{ReadyTimeout: 300 * time.Millisecond, ReadyInterval: 10 * time.Millisecond, StopTimeout: time.Second}, spec)
	u := rollout.Unit{User: "emil"}
	err := s.Start(ctx, u)
	require.ErrorIs(t, err, supervisor.ErrNotReady)
	st, _ := s.Status(ctx, u)
	assert.Equal(t, rollout.UnitStatus{State: "failed"}, st)
	eventually(t, "helper output", func() bool { return strings.Contains(readLog(t, spec), "got TERM") })
}

func TestExitDuringReadiness(t *testing.T) {
	ctx := ctxT(t)
	spec := helperSpec(t, "emil", "crash", "HELPER_DELAY=100ms")
	spec.Ready = func(context.Context) error { return errors.New("not yet") }
	s := newSupervisor(t, supervisor.Options{ReadyInterval: 10 * time.Millisecond}, spec)
	err := s.Start(ctx, rollout.Unit{User: "emil"})
	require.ErrorIs(t, err, supervisor.ErrExited)
	st, _ := s.Status(ctx, rollout.Unit{User: "emil"})
	assert.Equal(t, "failed", st.State)
}

func TestStartHonoursContextWhileWaitingForReadiness(t *testing.T) {
	spec, _ := readyHelper(t, "1h")
	s := newSupervisor(t, supervisor.Options{ReadyInterval: 10 * time.Millisecond}, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := s.Start(ctx, rollout.Unit{User: "emil"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	st, _ := s.Status(context.Background(), rollout.Unit{User: "emil"})
	assert.Equal(t, rollout.UnitStatus{State: "failed"}, st)
}

func TestRefusals(t *testing.T) {
	ctx := ctxT(t)
	spec := helperSpec(t, "emil", "serve")
	s := newSupervisor(t, supervisor.Options{}, spec)
	cases := []struct {
		unit rollout.Unit
		want error
	}{
		{rollout.Unit{User: "../emil"}, t3fleet.ErrInvalidName},
		{rollout.Unit{User: "emil; reboot"}, t3fleet.ErrInvalidName},
		{rollout.Unit{User: "Emil"}, t3fleet.ErrInvalidName},
		{rollout.Unit{User: "bob"}, supervisor.ErrUnknownUnit},
		{rollout.Unit{Name: "sshd.service"}, supervisor.ErrUnknownUnit},
		{rollout.Unit{User: "emil", Name: "t3-serve@bob.service"}, supervisor.ErrUnknownUnit},
		{rollout.Unit{}, supervisor.ErrUnknownUnit},
	}
	for _, c := range cases {
		require.ErrorIs(t, s.Start(ctx, c.unit), c.want, "%+v", c.unit)
		require.ErrorIs(t, s.Restart(ctx, c.unit), c.want, "%+v", c.unit)
		require.ErrorIs(t, s.Stop(ctx, c.unit), c.want, "%+v", c.unit)
		_, err := s.Status(ctx, c.unit)
		require.ErrorIs(t, err, c.want, "%+v", c.unit)
		if c.want == supervisor.ErrUnknownUnit {
			require.ErrorIs(t, s.Restart(ctx, c.unit), rollout.ErrUnitManager, "no build's doing")
		}
	}
	_, err := os.Stat(spec.LogFile)
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing was started")
}

func TestNewRejectsBadSpecs(t *testing.T) {
	bin := testBinary(t)
	cases := []struct {
		name  string
		specs []supervisor.UnitSpec
	}{
		{"hostile user", []supervisor.UnitSpec{{User: "../x", Argv: []string{bin}}}},
		{"no command", []supervisor.UnitSpec{{User: "emil"}}},
		{"same user twice", []supervisor.UnitSpec{{User: "emil", Argv: []string{bin}}, {User: "emil", Name: "other", Argv: []string{bin}}}},
		{"same name twice", []supervisor.UnitSpec{{User: "emil", Name: "x", Argv: []string{bin}}, {User: "bob", Name: "x", Argv: []string{bin}}}},
	}
	for _, c := range cases {
		_, err := supervisor.New(c.specs, supervisor.Options{})
		assert.Error(t, err, c.name)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	ctx := ctxT(t)
	s, err := supervisor.New([]supervisor.UnitSpec{helperSpec(t, "emil", "serve"), helperSpec(t, "bob", "stubborn")},
		supervisor.Options{StopTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	var pids []int
	for _, user := range []string{"emil", "bob"} {
		require.NoError(t, s.Start(ctx, rollout.Unit{User: user}))
		st, _ := s.Status(ctx, rollout.Unit{User: user})
		pids = append(pids, st.MainPID)
	}
	require.NoError(t, s.Close())
	for _, pid := range pids {
		assert.False(t, alive(pid), "pid %d survived Close", pid)
	}
	require.ErrorIs(t, s.Start(ctx, rollout.Unit{User: "emil"}), supervisor.ErrClosed)
	_, err = s.Units(ctx)
	require.ErrorIs(t, err, supervisor.ErrClosed)
	require.NoError(t, s.Close(), "Close twice")
}

func TestConcurrentRestartsLeaveOneProcess(t *testing.T) {
	ctx := ctxT(t)
	s := newSupervisor(t, supervisor.Options{}, helperSpec(t, "emil", "serve"))
	u := rollout.Unit{User: "emil"}
	var mu sync.Mutex
	var pids []int
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			assert.NoError(t, s.Restart(ctx, u))
			st, _ := s.Status(ctx, u)
			mu.Lock()
			pids = append(pids, st.MainPID)
			mu.Unlock()
		})
	}
	wg.Wait()
	final, _ := s.Status(ctx, u)
	require.True(t, alive(final.MainPID))
	for _, pid := range pids {
		if pid != final.MainPID {
			assert.False(t, alive(pid), "pid %d of an earlier restart survived", pid)
		}
	}
}

// A readiness check that passes only after the process is gone (another
// process, a stale instance, holds the port) is no start: Start says the
// process exited instead of reporting a unit that is not running.
func TestReadinessAnsweredAfterTheProcessExited(t *testing.T) {
	ctx := ctxT(t)
	// The process exits only once the first readiness check has begun: one
	// that died before any check is the build's own failure, not this case.
	checking := filepath.Join(t.TempDir(), "checking")
	spec := supervisor.UnitSpec{User: "emil", Argv: []string{"/bin/sh", "-c",
		`while [ ! -e "$1" ]; do sleep 0.01; done; exit 1`, "sh", checking}}
	var s *supervisor.Supervisor
	u := rollout.Unit{User: "emil"}
	spec.Ready = func(ctx context.Context) error {
		if err := os.WriteFile(checking, nil, 0o644); err != nil {
			return err
		}
		for { // answers only once the unit's own process has been reaped
			if st, _ := s.Status(ctx, u); st.State == "failed" {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	s = newSupervisor(t, supervisor.Options{ReadyInterval: 10 * time.Millisecond}, spec)
	err := s.Start(ctx, u)
	require.ErrorIs(t, err, supervisor.ErrExited)
	require.ErrorIs(t, err, rollout.ErrWrongBuild, "a stale process answers: the engine blames no build for it")
	st, err := s.Status(ctx, u)
	require.NoError(t, err)
	require.Equal(t, "failed", st.State)
}
