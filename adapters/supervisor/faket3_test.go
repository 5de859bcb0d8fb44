package supervisor_test

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/supervisor"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/rollout"
)

// fleetPrefix stages fake t3 builds side by side under a prefix and points
// <prefix>/current at the first, the layout a unit's command line names.
func fleetPrefix(t *testing.T, builds map[string]t3test.Faults, first string) string {
	t.Helper()
	prefix := t.TempDir()
	require.NoError(t, t3test.WritePrefix(prefix, t3test.BuildCLI(t), builds, first))
	return prefix
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serveSpec runs <prefix>/current/t3 serve on a fixed loopback port, ready
// once its environment endpoint answers.
func serveSpec(t *testing.T, prefix string) (supervisor.UnitSpec, string) {
	port := strconv.Itoa(freePort(t))
	base := "http://127.0.0.1:" + port
	dir := t.TempDir()
	return supervisor.UnitSpec{
		User:    "emil",
		Argv:    []string{filepath.Join(prefix, "current", "t3"), "serve", "--host", "127.0.0.1", "--port", port, "--base-dir", filepath.Join(dir, "t3")},
		LogFile: filepath.Join(dir, "serve.log"),
		Ready:   supervisor.ReadyHTTP(base + t3test.PathEnvironment),
	}, base
}

func serverVersion(t *testing.T, base string) string {
	t.Helper()
	v, err := t3test.ServerVersion(context.Background(), base)
	require.NoError(t, err)
	return v
}

func TestFakeT3RestartRunsTheSwitchedBuild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := fleetPrefix(t, map[string]t3test.Faults{"0.0.27": {}, "0.0.30": {}}, "0.0.27")
	spec, base := serveSpec(t, prefix)
	s := newSupervisor(t, supervisor.Options{}, spec)
	u := rollout.Unit{User: "emil"}

	require.NoError(t, s.Start(ctx, u))
	assert.Equal(t, "0.0.27", serverVersion(t, base), "answering as soon as Start returns")
	before, _ := s.Status(ctx, u)

	require.NoError(t, t3test.SwitchCurrent(prefix, "0.0.30"))
	require.NoError(t, s.Restart(ctx, u))
	assert.Equal(t, "0.0.30", serverVersion(t, base))
	after, _ := s.Status(ctx, u)
	assert.NotEqual(t, before.MainPID, after.MainPID)
	assert.False(t, alive(before.MainPID))
}

func TestFakeT3StartWaitsForASlowListener(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := fleetPrefix(t, map[string]t3test.Faults{"0.0.30": {SlowStart: 500 * time.Millisecond}}, "0.0.30")
	spec, base := serveSpec(t, prefix)
	s := newSupervisor(t, supervisor.Options{ReadyInterval: 20 * time.Millisecond}, spec)
	require.NoError(t, s.Start(ctx, rollout.Unit{User: "emil"}))
	assert.Equal(t, "0.0.30", serverVersion(t, base))
}

// t3 accepts connections before it answers them and never answers one
// accepted in between (t3code #12215): the HTTP readiness check's first
// request lands there, and must not hold Start for a whole check timeout.
func TestFakeT3StartThroughTheSilentWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := fleetPrefix(t, map[string]t3test.Faults{"0.0.30": {DeafStart: 500 * time.Millisecond}}, "0.0.30")
	spec, base := serveSpec(t, prefix)
	s := newSupervisor(t, supervisor.Options{ReadyInterval: 20 * time.Millisecond, ReadyCheckTimeout: 5 * time.Second}, spec)
	t0 := time.Now()
	require.NoError(t, s.Start(ctx, rollout.Unit{User: "emil"}))
	assert.Less(t, time.Since(t0), 4*time.Second, "ready soon after the handler attached")
	assert.Equal(t, "0.0.30", serverVersion(t, base))
}

func TestFakeT3WedgedIsNotReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := fleetPrefix(t, map[string]t3test.Faults{"0.0.30": {Wedged: true}}, "0.0.30")
	spec, _ := serveSpec(t, prefix)
	s := newSupervisor(t, supervisor.Options{ReadyTimeout: time.Second, ReadyCheckTimeout: 100 * time.Millisecond}, spec)
	u := rollout.Unit{User: "emil"}
	err := s.Start(ctx, u)
	require.ErrorIs(t, err, supervisor.ErrNotReady)
	st, _ := s.Status(ctx, u)
	assert.Equal(t, rollout.UnitStatus{State: "failed"}, st)
}

func TestFakeT3FailedMigrationExits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := fleetPrefix(t, map[string]t3test.Faults{"0.0.30": {MigrationFails: true}}, "0.0.30")
	spec, _ := serveSpec(t, prefix)
	s := newSupervisor(t, supervisor.Options{}, spec)
	u := rollout.Unit{User: "emil"}
	err := s.Start(ctx, u)
	require.ErrorIs(t, err, supervisor.ErrExited)
	assert.Contains(t, err.Error(), "exit status 1")
	st, _ := s.Status(ctx, u)
	assert.Equal(t, "failed", st.State)
	assert.Contains(t, readLog(t, spec), `Migration "`)
}
