package systemdtest_test

import (
	"context"
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

	"github.com/t3fleet/t3fleet/adapters/systemd/systemdtest"
)

// TestTwoManagersThenNothingLeft runs two managers side by side (as
// concurrent test runs would), each with a running service, then checks
// Close leaves no process, cgroup or directory behind.
func TestTwoManagersThenNothingLeft(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	var ums []*systemdtest.UserManager
	var pids []int
	for range 2 {
		um := systemdtest.Start(t, systemdtest.Options{})
		um.WriteService(t, "t3-serve@.service", systemdtest.Service{
			ExecStart: []string{"/bin/sh", "-c", `echo "started $1"; exec "$2" infinity`, "sh", "100% $HOME", sleep},
		})
		ums = append(ums, um)
	}
	require.NotEqual(t, ums[0].Socket, ums[1].Socket)
	for _, um := range ums {
		pids = append(pids, startAndPID(t, um, "t3-serve@emil.service"))
	}
	require.NotEqual(t, pids[0], pids[1])

	// Quoting: the argument reached the process verbatim, output in UnitLog.
	b, err := os.ReadFile(ums[0].UnitLog("t3-serve@emil.service"))
	require.NoError(t, err)
	assert.Equal(t, "started 100% $HOME\n", string(b))

	// systemctl --user works from the host with Env.
	cmd := exec.Command("systemctl", "--user", "is-active", "t3-serve@emil.service")
	cmd.Env = ums[1].Env()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "active", strings.TrimSpace(string(out)))

	for i, um := range ums {
		mgr := um.PID
		require.NoError(t, um.Close())
		require.NoError(t, um.Close(), "Close twice")
		assert.False(t, alive(pids[i]), "service process %d survived", pids[i])
		assert.False(t, alive(mgr), "manager %d survived", mgr)
		_, err := os.Stat(um.Dir)
		assert.ErrorIs(t, err, os.ErrNotExist)
	}
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"} {
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			assert.False(t, strings.HasPrefix(e.Name(), systemdtest.CgroupPrefix+strconv.Itoa(os.Getpid())+"-"),
				"cgroup %s left behind", filepath.Join(root, e.Name()))
		}
	}
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func startAndPID(t *testing.T, um *systemdtest.UserManager, unit string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := um.Dial()
	require.NoError(t, err)
	defer conn.Close()
	done := make(chan string, 1)
	_, err = conn.StartUnitContext(ctx, unit, "replace", done)
	require.NoError(t, err)
	select {
	case res := <-done:
		require.Equal(t, "done", res)
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	p, err := conn.GetUnitTypePropertyContext(ctx, unit, "Service", "MainPID")
	require.NoError(t, err)
	pid := int(p.Value.Value().(uint32))
	require.True(t, alive(pid))
	return pid
}

func TestServiceText(t *testing.T) {
	got := systemdtest.Service{
		ExecStart:        []string{"/usr/bin/t3", "serve", `--name=a "b"`, "50%", "$X"},
		Environment:      []string{"T3_PORT=3801"},
		WorkingDirectory: "/srv",
		Log:              "/var/log/x.log",
	}.Text()
	want := "[Unit]\nDescription=t3fleet test service %n\n\n[Service]\nType=exec\n" +
		`ExecStart="/usr/bin/t3" "serve" "--name=a \"b\"" "50%%" "$$X"` + "\n" +
		`Environment="T3_PORT=3801"` + "\nWorkingDirectory=/srv\n" +
		"StandardOutput=append:/var/log/x.log\nStandardError=inherit\n"
	assert.Equal(t, want, got)
}

func TestAvailableNamesWhatIsMissing(t *testing.T) {
	err := systemdtest.Available("/nonexistent/systemd")
	require.Error(t, err)
	if os.Geteuid() == 0 {
		assert.Contains(t, err.Error(), "/nonexistent/systemd")
	}
}
