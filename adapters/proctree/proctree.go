package proctree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/idlegate"
)

// DefaultProcRoot is where the process table is read from.
const DefaultProcRoot = "/proc"

// DefaultAgentNames returns the names of the agent CLIs whose presence
// under an instance means it has open agent sessions.
func DefaultAgentNames() []string { return []string{"claude", "codex", "opencode"} }

// isInterpreter reports whether a program runs an agent given as its script
// argument (node /usr/bin/claude).
func isInterpreter(name string) bool {
	switch name {
	case "node", "nodejs", "bun", "deno":
		return true
	}
	return false
}

// scriptArg returns the script an interpreter runs: its first argument
// after its own options (node --no-warnings -r hook.js claude) and, for bun
// and deno, their "run" subcommand. Missing it would call an agent idle.
func scriptArg(interp string, args []string) (string, bool) {
	if (interp == "bun" || interp == "deno") && len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--":
			if i+1 < len(args) {
				return args[i+1], true
			}
			return "", false
		case strings.HasPrefix(a, "-"):
			if optionTakesValue(a) {
				i++
			}
		default:
			return a, true
		}
	}
	return "", false
}

// optionTakesValue reports whether an interpreter option takes the next
// argument as its value (node -r hook.js), rather than joined with "=".
func optionTakesValue(opt string) bool {
	switch opt {
	case "-r", "--require", "--import", "--loader", "--experimental-loader",
		"--preload", "--config", "--env-file", "--cwd":
		return true
	}
	return false
}

// ErrNoMainPID: the instance has no main process to inspect.
var ErrNoMainPID = errors.New("no main PID")

// Process is one process of the table.
type Process struct {
	PID, PPID int
	Comm      string   // the kernel's short name (/proc/<pid>/comm)
	Args      []string // argv, possibly empty (kernel threads, zombies)
}

// Oracle says an instance is not idle while an agent process (claude, codex,
// opencode, ...) runs anywhere below its main process, or, with Cgroup, in
// the cgroup of its unit.
type Oracle struct {
	// MainPID returns the instance's main PID, e.g. from the unit manager's
	// status. Required. A PID <= 0 or an error is a not-idle verdict.
	MainPID func(ctx context.Context, in t3fleet.Instance) (int, error)
	// Cgroup, when set, returns the cgroup that holds exactly the
	// instance's processes, e.g. a systemd unit's ControlGroup, as this
	// process sees it in /proc/<pid>/cgroup. An agent in it or below it is
	// then the instance's even outside the main process's tree: one whose
	// parent exited is re-parented to PID 1 or a subreaper, yet stopping
	// the unit still kills it. An error is a not-idle verdict. "" (no
	// cgroup, e.g. the unit is stopped) and "/" (every process on the
	// machine) leave the tree alone to decide. Nil: the tree alone, as for
	// a unit manager without a cgroup per unit.
	Cgroup func(ctx context.Context, in t3fleet.Instance) (string, error)
	// ProcRoot is the proc file system to read. Empty: DefaultProcRoot.
	ProcRoot string
	// AgentNames are matched against each descendant's comm, the base name
	// of argv[0], and for node/bun/deno the base name of the script they
	// run (the first argument after their options and a "run" subcommand)
	// without its .js/.mjs/.cjs extension. Nil: DefaultAgentNames().
	AgentNames []string
}

// Agent is an agent process of an instance.
type Agent struct {
	Process
	// OutsideTree: found by the unit's cgroup alone, not below the main
	// process (its parent exited and it was re-parented).
	OutsideTree bool
}

var _ idlegate.IdleOracle = (*Oracle)(nil)

// Idle reports not idle, with the agents in the reason, when any descendant
// of the main PID, or with Cgroup any process in the unit's cgroup, is an
// agent. It fails closed: no main PID, a main PID that does not exist, no
// cgroup, a main PID outside its cgroup, or an unreadable process table is
// not idle.
func (o *Oracle) Idle(ctx context.Context, in t3fleet.Instance) (idlegate.Verdict, error) {
	v, err := o.idle(ctx, in)
	if err != nil {
		return idlegate.Verdict{Reason: "not idle: " + err.Error()}, fmt.Errorf("process tree %s: %w", in.OSUser, err)
	}
	return v, nil
}

func (o *Oracle) idle(ctx context.Context, in t3fleet.Instance) (idlegate.Verdict, error) {
	if o.MainPID == nil {
		return idlegate.Verdict{}, fmt.Errorf("%w: no MainPID source configured", ErrNoMainPID)
	}
	pid, err := o.MainPID(ctx, in)
	if err != nil {
		return idlegate.Verdict{}, fmt.Errorf("%w: %w", ErrNoMainPID, err)
	}
	if pid <= 0 {
		return idlegate.Verdict{}, fmt.Errorf("%w: instance not running", ErrNoMainPID)
	}
	where := fmt.Sprintf("under pid %d", pid)
	var cg string
	if o.Cgroup != nil {
		raw, err := o.Cgroup(ctx, in)
		if err != nil {
			return idlegate.Verdict{}, fmt.Errorf("%w: %w", ErrCgroup, err)
		}
		if cg = unitCgroup(raw); cg != "" {
			where += " or in cgroup " + cg
		} else {
			where += fmt.Sprintf(" (tree only: unit cgroup %q)", raw)
		}
	}
	agents, err := o.UnitAgents(ctx, pid, cg)
	if err != nil {
		return idlegate.Verdict{}, err
	}
	if len(agents) == 0 {
		return idlegate.Verdict{Idle: true, Reason: "idle: no agent process " + where}, nil
	}
	var names []string
	for _, a := range agents {
		n := fmt.Sprintf("%s[%d]", a.Comm, a.PID)
		if a.OutsideTree {
			n += " (in the unit's cgroup, outside the tree)"
		}
		names = append(names, n)
	}
	return idlegate.Verdict{Reason: fmt.Sprintf("%d agent process(es) %s: %s",
		len(agents), where, strings.Join(names, ", "))}, nil
}

// Agents returns the agent processes below pid (pid itself excluded),
// sorted by PID.
func (o *Oracle) Agents(ctx context.Context, pid int) ([]Process, error) {
	agents, err := o.UnitAgents(ctx, pid, "")
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, a := range agents {
		out = append(out, a.Process)
	}
	return out, nil
}

// UnitAgents returns the agent processes below pid and, unless cgroup is ""
// or "/", those in cgroup or a cgroup below it (pid itself excluded),
// sorted by PID. The cgroup must hold pid: a main process seen elsewhere
// means this process reads cgroup paths from another cgroup namespace than
// the one cgroup came from, where no agent would ever match. An agent whose
// cgroup cannot be read (it exited meanwhile) is judged by the tree alone.
func (o *Oracle) UnitAgents(ctx context.Context, pid int, cgroup string) ([]Agent, error) {
	procs, err := o.Processes(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := procs[pid]; !ok {
		return nil, fmt.Errorf("%w: pid %d is not running", ErrNoMainPID, pid)
	}
	// Only the agents' cgroups are read, and only with a cgroup: the table
	// scan runs on every idle check.
	cg := unitCgroup(cgroup)
	if cg != "" {
		mine, err := readCgroup(o.root(), pid)
		if err != nil {
			return nil, fmt.Errorf("%w: main pid %d: %w", ErrCgroup, pid, err)
		}
		if !inCgroup(mine, cg) {
			return nil, fmt.Errorf("%w: main pid %d is in %s, not in %s (are the cgroups read from another cgroup namespace than the unit manager's?)",
				ErrCgroup, pid, mine, cg)
		}
	}
	below := descendants(procs, pid)
	names := o.AgentNames
	if names == nil {
		names = DefaultAgentNames()
	}
	var out []Agent
	for _, p := range procs {
		if p.PID == pid || !isAgent(p, names) {
			continue
		}
		if below[p.PID] {
			out = append(out, Agent{Process: p})
			continue
		}
		if cg == "" {
			continue
		}
		if c, err := readCgroup(o.root(), p.PID); err == nil && inCgroup(c, cg) {
			out = append(out, Agent{Process: p, OutsideTree: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// descendants returns the PIDs below pid.
func descendants(procs map[int]Process, pid int) map[int]bool {
	children := map[int][]int{}
	for _, p := range procs {
		children[p.PPID] = append(children[p.PPID], p.PID)
	}
	seen := map[int]bool{pid: true}
	queue := append([]int(nil), children[pid]...)
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if seen[c] {
			continue
		}
		seen[c] = true
		queue = append(queue, children[c]...)
	}
	delete(seen, pid)
	return seen
}

func isAgent(p Process, names []string) bool {
	cands := []string{p.Comm}
	if len(p.Args) > 0 {
		a0 := filepath.Base(p.Args[0])
		cands = append(cands, a0)
		if isInterpreter(a0) {
			if script, ok := scriptArg(a0, p.Args[1:]); ok {
				a1 := filepath.Base(script)
				for _, ext := range []string{".js", ".mjs", ".cjs"} {
					a1 = strings.TrimSuffix(a1, ext)
				}
				cands = append(cands, a1)
			}
		}
	}
	for _, c := range cands {
		for _, n := range names {
			if c == n {
				return true
			}
		}
	}
	return false
}

// Processes reads the process table. Processes that exit while it is read
// are skipped.
func (o *Oracle) Processes(ctx context.Context) (map[int]Process, error) {
	root := o.root()
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("read process table: %w", err)
	}
	procs := map[int]Process{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := readProcess(filepath.Join(root, e.Name()), pid)
		if err != nil {
			continue // gone, or a kernel thread without a readable stat
		}
		procs[pid] = p
	}
	return procs, nil
}

func (o *Oracle) root() string {
	if o.ProcRoot == "" {
		return DefaultProcRoot
	}
	return o.ProcRoot
}

// readProcess parses <dir>/stat ("pid (comm) state ppid ...", comm may hold
// spaces and parentheses) and <dir>/cmdline.
func readProcess(dir string, pid int) (Process, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Process{}, err
	}
	s := string(b)
	lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if lp < 0 || rp < lp {
		return Process{}, fmt.Errorf("%s/stat: malformed", dir)
	}
	fields := strings.Fields(s[rp+1:])
	if len(fields) < 2 {
		return Process{}, fmt.Errorf("%s/stat: malformed", dir)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return Process{}, fmt.Errorf("%s/stat: ppid: %w", dir, err)
	}
	p := Process{PID: pid, PPID: ppid, Comm: s[lp+1 : rp]}
	if cl, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		for _, a := range strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00") {
			if a != "" {
				p.Args = append(p.Args, a)
			}
		}
	}
	return p, nil
}
