package proctree_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/proctree"
)

var bg = context.Background()

// fakeProc writes a /proc-like tree: pid -> (ppid, comm, argv), and for
// the pids in cgroups a cgroup file with that content ("": none).
type fakeProcess struct {
	ppid int
	comm string
	argv []string
}

func fakeProc(t *testing.T, procs map[int]fakeProcess, cgroups map[int]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, p := range procs {
		dir := filepath.Join(root, fmt.Sprint(pid))
		require.NoError(t, os.MkdirAll(dir, 0o755))
		if cg := cgroups[pid]; cg != "" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cg), 0o444))
		}
		stat := fmt.Sprintf("%d (%s) S %d %d 0 0 -1 4194560 100 0 0 0", pid, p.comm, p.ppid, p.ppid)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644))
		cl := strings.Join(p.argv, "\x00")
		if cl != "" {
			cl += "\x00"
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "cmdline"), []byte(cl), 0o644))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "self"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "meminfo"), nil, 0o644))
	return root
}

func mainPID(pid int, err error) func(context.Context, t3fleet.Instance) (int, error) {
	return func(context.Context, t3fleet.Instance) (int, error) { return pid, err }
}

func TestOracle(t *testing.T) {
	base := map[int]fakeProcess{
		1:   {0, "systemd", []string{"/sbin/init"}},
		100: {1, "node", []string{"node", "/usr/lib/node_modules/t3/dist/bin.mjs", "serve"}},
		900: {1, "claude", []string{"claude"}}, // someone else's agent
	}
	with := func(extra map[int]fakeProcess) map[int]fakeProcess {
		m := map[int]fakeProcess{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name    string
		procs   map[int]fakeProcess
		pid     int
		pidErr  error
		idle    bool
		inWhy   string
		wantErr error
	}{
		{"no children", base, 100, nil, true, "no agent process under pid 100", nil},
		{"codex child", with(map[int]fakeProcess{101: {100, "codex", []string{"/usr/local/bin/codex", "exec"}}}), 100, nil, false, "codex[101]", nil},
		{"claude grandchild via node", with(map[int]fakeProcess{
			101: {100, "sh", []string{"sh", "-c", "x"}},
			102: {101, "node", []string{"node", "/opt/bin/claude"}},
		}), 100, nil, false, "node[102]", nil},
		{"claude via node with flags", with(map[int]fakeProcess{
			101: {100, "node", []string{"node", "--max-old-space-size=4096", "--no-warnings", "/usr/local/bin/claude", "--resume"}},
		}), 100, nil, false, "node[101]", nil},
		{"claude via node with a preloaded module", with(map[int]fakeProcess{
			101: {100, "node", []string{"/usr/bin/node", "-r", "/opt/trace.js", "/usr/local/bin/claude"}},
		}), 100, nil, false, "node[101]", nil},
		{"opencode via bun run", with(map[int]fakeProcess{
			101: {100, "bun", []string{"bun", "run", "/home/u/.bun/bin/opencode"}},
		}), 100, nil, false, "bun[101]", nil},
		{"codex via deno run with permissions", with(map[int]fakeProcess{
			101: {100, "deno", []string{"deno", "run", "-A", "/opt/codex.mjs"}},
		}), 100, nil, false, "deno[101]", nil},
		{"node with a script that only mentions claude", with(map[int]fakeProcess{
			101: {100, "node", []string{"node", "--no-warnings", "/srv/app.js", "claude"}},
		}), 100, nil, true, "", nil},
		{"opencode by argv0 with a renamed comm", with(map[int]fakeProcess{101: {100, "bun-worker", []string{"/home/u/.bin/opencode"}}}), 100, nil, false, "[101]", nil},
		// The agent is found only through 101, whose stat must parse.
		{"comm with spaces and parens", with(map[int]fakeProcess{
			101: {100, "a (b) c", nil},
			102: {101, "codex", []string{"codex"}},
		}), 100, nil, false, "codex[102]", nil},
		{"unrelated helpers", with(map[int]fakeProcess{101: {100, "git", []string{"git", "status"}}, 102: {101, "rg", []string{"rg", "claude"}}}), 100, nil, true, "", nil},
		{"main pid gone", base, 555, nil, false, "", proctree.ErrNoMainPID},
		{"not running", base, 0, nil, false, "", proctree.ErrNoMainPID},
		{"main pid unknown", base, 0, errors.New("dbus down"), false, "", proctree.ErrNoMainPID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := &proctree.Oracle{MainPID: mainPID(c.pid, c.pidErr), ProcRoot: fakeProc(t, c.procs, nil)}
			v, err := o.Idle(bg, t3fleet.Instance{OSUser: "emil"})
			if c.wantErr != nil {
				require.ErrorIs(t, err, c.wantErr)
				assert.False(t, v.Idle)
				assert.Contains(t, v.Reason, "not idle")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.idle, v.Idle, v.Reason)
			assert.Contains(t, v.Reason, c.inWhy)
		})
	}
}

func TestOracleNoMainPIDSource(t *testing.T) {
	v, err := (&proctree.Oracle{}).Idle(bg, t3fleet.Instance{})
	assert.ErrorIs(t, err, proctree.ErrNoMainPID)
	assert.False(t, v.Idle)
}

// The real /proc: a child of this test process named "claude" makes it
// "not idle"; once it exits, idle again.
func TestOracleRealProc(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	bin := filepath.Join(t.TempDir(), "claude")
	b, err := os.ReadFile(sleep)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, b, 0o755))

	o := &proctree.Oracle{MainPID: mainPID(os.Getpid(), nil)}
	v, err := o.Idle(bg, t3fleet.Instance{OSUser: "emil"})
	require.NoError(t, err)
	require.True(t, v.Idle, v.Reason)

	cmd := exec.Command(bin, "30")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err = o.Idle(bg, t3fleet.Instance{OSUser: "emil"})
		require.NoError(t, err)
		if !v.Idle || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	assert.False(t, v.Idle)
	assert.Contains(t, v.Reason, fmt.Sprintf("claude[%d]", cmd.Process.Pid))

	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	v, err = o.Idle(bg, t3fleet.Instance{OSUser: "emil"})
	require.NoError(t, err)
	assert.True(t, v.Idle, v.Reason)
}
