package systemd_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
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
