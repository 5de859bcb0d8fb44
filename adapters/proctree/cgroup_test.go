package proctree_test

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/proctree"
)

// The cgroups of a system manager's t3-serve@ana.service and of bob's.
const (
	anaUnit = `/system.slice/system-t3\x2dserve.slice/t3-serve@ana.service`
	bobUnit = `/system.slice/system-t3\x2dserve.slice/t3-serve@bob.service`
)

// v2 and v1 are /proc/<pid>/cgroup files of a cgroup2-only machine and of a
// legacy (cgroup v1 only) one.
func v2(path string) string { return "0::" + path + "\n" }
func v1(path string) string {
	return "12:pids:/system.slice\n3:cpu,cpuacct:/\n1:name=systemd:" + path + "\n"
}

func cgroupOf(cg string, err error) func(context.Context, t3fleet.Instance) (string, error) {
	return func(context.Context, t3fleet.Instance) (string, error) { return cg, err }
}

// Ana's serve is pid 100; bob's agent 900 runs in bob's unit. Each case
// adds processes and cgroup files (content "" removes the file).
func TestOracleCgroup(t *testing.T) {
	procs := map[int]fakeProcess{
		1:   {0, "systemd", []string{"/sbin/init"}},
		100: {1, "node", []string{"node", "/usr/lib/node_modules/t3/dist/bin.mjs", "serve"}},
		900: {1, "claude", []string{"claude"}},
	}
	cgroups := map[int]string{1: v2("/init.scope"), 100: v2(anaUnit), 900: v2(bobUnit)}
	reparented := func(pid int, name string) map[int]fakeProcess {
		return map[int]fakeProcess{pid: {1, name, []string{name}}}
	}
	cases := []struct {
		name     string
		procs    map[int]fakeProcess
		cgroups  map[int]string
		cg       string
		cgErr    error
		idle     bool
		inWhy    string
		notInWhy string
		wantErr  error
	}{
		{"re-parented agent in the unit's cgroup", reparented(101, "claude"), map[int]string{101: v2(anaUnit)}, anaUnit, nil,
			false, "claude[101] (in the unit's cgroup, outside the tree)", "900", nil},
		{"only another unit's agent", nil, nil, anaUnit, nil, true, "no agent process under pid 100 or in cgroup " + anaUnit, "", nil},
		{"agent in a sub-cgroup of the unit", reparented(101, "codex"), map[int]string{101: v2(anaUnit + "/agents/x")}, anaUnit, nil,
			false, "codex[101] (in the unit's cgroup", "", nil},
		{"a longer unit name is another cgroup", reparented(101, "claude"), map[int]string{101: v2(anaUnit + "2")}, anaUnit, nil,
			true, "", "", nil},
		{"a shorter unit name is another cgroup", reparented(101, "claude"),
			map[int]string{100: v2(`/system.slice/system-t3\x2dserve.slice/t3-serve@an.service`), 101: v2(anaUnit)},
			`/system.slice/system-t3\x2dserve.slice/t3-serve@an.service`, nil, true, "", "", nil},
		{"a trailing slash on the unit's cgroup", reparented(101, "claude"), map[int]string{101: v2(anaUnit)}, anaUnit + "/", nil,
			false, "claude[101] (in the unit's cgroup", "", nil},
		{"cgroup v1 name=systemd", reparented(101, "claude"), map[int]string{100: v1(anaUnit), 101: v1(anaUnit)}, anaUnit, nil,
			false, "claude[101] (in the unit's cgroup", "", nil},
		{"hybrid: the cgroup v2 line wins", reparented(101, "claude"),
			map[int]string{101: "1:name=systemd:" + anaUnit + "\n0::/user.slice/elsewhere\n"}, anaUnit, nil, true, "", "", nil},
		{"hybrid: an empty cgroup v2 line gives way to name=systemd", reparented(101, "claude"),
			map[int]string{101: "1:name=systemd:" + anaUnit + "\n0::\n"}, anaUnit, nil, false, "claude[101] (in the unit's cgroup", "", nil},
		// Legacy systemd (cgroup v1) on a kernel where something mounted
		// cgroup2 (an eBPF agent, a container runtime): every process then
		// shows "0::/", and name=systemd holds the unit's cgroup.
		{"legacy with cgroup2 mounted: 0::/ gives way to name=systemd", reparented(101, "claude"),
			map[int]string{100: v1(anaUnit) + "0::/\n", 101: v1(anaUnit) + "0::/\n"}, anaUnit, nil,
			false, "claude[101] (in the unit's cgroup, outside the tree)", "", nil},
		{"legacy with cgroup2 mounted, no agent: idle", nil,
			map[int]string{100: v1(anaUnit) + "0::/\n"}, anaUnit, nil,
			true, "idle: no agent process under pid 100 or in cgroup " + anaUnit, "", nil},
		{"agent in the tree, moved to another cgroup", map[int]fakeProcess{101: {100, "codex", []string{"codex"}}},
			map[int]string{101: v2("/user.slice/run-1.scope")}, anaUnit, nil, false, "codex[101]", "outside the tree", nil},
		{"agent both in the tree and the cgroup", map[int]fakeProcess{101: {100, "codex", []string{"codex"}}},
			map[int]string{101: v2(anaUnit)}, anaUnit, nil, false, "codex[101]", "outside the tree", nil},
		{"root cgroup: tree only", reparented(101, "claude"), map[int]string{101: v2(anaUnit)}, "/", nil,
			true, `tree only: unit cgroup "/"`, "", nil},
		{"no cgroup (stopped unit): tree only", reparented(101, "claude"), map[int]string{101: v2(anaUnit)}, "", nil,
			true, `tree only: unit cgroup ""`, "", nil},
		{"agent without a cgroup file is skipped", map[int]fakeProcess{101: {1, "claude", nil}, 102: {1, "codex", nil}},
			map[int]string{101: "", 102: v2(anaUnit)}, anaUnit, nil, false, "1 agent process(es)", "claude[101]", nil},
		{"cgroup unknown", nil, nil, "", errors.New("bus gone"), false, "bus gone", "", proctree.ErrCgroup},
		// Read from another cgroup namespace, nothing would ever match.
		{"main pid outside the unit's cgroup", reparented(101, "claude"),
			map[int]string{100: v2("/../../system.slice/system-t3\\x2dserve.slice/t3-serve@ana.service"), 101: v2(anaUnit)},
			anaUnit, nil, false, "not in " + anaUnit, "", proctree.ErrCgroup},
		{"main pid without a cgroup file", nil, map[int]string{100: ""}, anaUnit, nil, false, "main pid 100", "", proctree.ErrCgroup},
		{"main pid with an unparseable cgroup file", nil, map[int]string{100: "garbage"}, anaUnit, nil, false, "main pid 100", "", proctree.ErrCgroup},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps, cgs := maps.Clone(procs), maps.Clone(cgroups)
			maps.Copy(ps, c.procs)
			maps.Copy(cgs, c.cgroups)
			o := &proctree.Oracle{MainPID: mainPID(100, nil), Cgroup: cgroupOf(c.cg, c.cgErr), ProcRoot: fakeProc(t, ps, cgs)}
			v, err := o.Idle(bg, t3fleet.Instance{OSUser: "ana"})
			if c.wantErr != nil {
				require.ErrorIs(t, err, c.wantErr)
				assert.False(t, v.Idle)
				assert.Contains(t, v.Reason, "not idle")
			} else {
				require.NoError(t, err)
				assert.Equal(t, c.idle, v.Idle, v.Reason)
			}
			assert.Contains(t, v.Reason, c.inWhy)
			if c.notInWhy != "" {
				assert.NotContains(t, v.Reason, c.notInWhy)
			}
		})
	}
}

// Agents is the tree alone, as before Cgroup existed; UnitAgents adds the
// cgroup and says which agents only it found.
func TestAgentsAndUnitAgents(t *testing.T) {
	root := fakeProc(t, map[int]fakeProcess{
		100: {1, "node", []string{"node", "t3", "serve"}},
		101: {1, "claude", []string{"claude"}},
		102: {100, "codex", []string{"codex"}},
	}, map[int]string{100: v2(anaUnit), 101: v2(anaUnit), 102: v2(anaUnit)})
	o := &proctree.Oracle{ProcRoot: root}

	tree, err := o.Agents(bg, 100)
	require.NoError(t, err)
	require.Len(t, tree, 1)
	assert.Equal(t, 102, tree[0].PID)

	all, err := o.UnitAgents(bg, 100, anaUnit)
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, proctree.Agent{Process: proctree.Process{PID: 101, PPID: 1, Comm: "claude", Args: []string{"claude"}}, OutsideTree: true}, all[0])
	assert.Equal(t, proctree.Agent{Process: tree[0]}, all[1])

	// Without Cgroup the Oracle is the tree alone.
	v, err := (&proctree.Oracle{MainPID: mainPID(100, nil), ProcRoot: root}).Idle(bg, t3fleet.Instance{OSUser: "ana"})
	require.NoError(t, err)
	assert.False(t, v.Idle)
	assert.Contains(t, v.Reason, "1 agent process(es) under pid 100: codex[102]")
}
