// Package proctree is an idlegate.IdleOracle over the processes of an
// instance, read from /proc: an agent CLI (claude, codex, opencode) among
// them means it has open agent sessions, so it is not idle.
//
// An instance's processes are those below its main process and, when the
// Oracle has a Cgroup source, those in its unit's cgroup (or a cgroup below
// it). The tree alone misses an agent whose parent exited: it is
// re-parented to PID 1 or a subreaper, yet systemd still kills it with the
// unit, since stopping a unit kills its whole cgroup. So with systemd, feed
// Cgroup from the unit's ControlGroup:
//
//	o := &proctree.Oracle{
//		MainPID: func(ctx context.Context, in t3fleet.Instance) (int, error) {
//			st, err := units.Status(ctx, unitFor(in))
//			return st.MainPID, err
//		},
//		Cgroup: func(ctx context.Context, in t3fleet.Instance) (string, error) {
//			return units.ControlGroup(ctx, unitFor(in))
//		},
//	}
//	gate := idlegate.All(idlegate.NewDBOracle(idlegate.DBOptions{}), o)
//
// Both come from func fields, so any unit manager (systemd's MainPID and
// ControlGroup, a supervisor's child) can feed them. Leave Cgroup nil for a
// unit manager without a cgroup per unit: a cgroup shared with other
// instances would count their agents too.
//
// # Cgroups
//
// A process's cgroup is the path of the cgroup v2 line of
// /proc/<pid>/cgroup ("0::/path"), or of cgroup v1's name=systemd hierarchy
// where there is none or it is the root ("0::/": a legacy systemd on a
// kernel where something else mounted cgroup2). It is relative to the reader's cgroup namespace, as
// systemd's ControlGroup is to the manager's: the oracle checks that the
// main process is in the cgroup it was given, and is not idle if not, so
// that a namespace mismatch is reported instead of silently finding no
// agents. A cgroup of "" (a stopped unit) or "/" (the whole machine, which
// would make anyone's agent hold back every instance) is ignored: the tree
// alone decides. Cgroup files are read only when Cgroup is set, and only
// for the main process and the agents.
//
// It does not look inside the processes (an agent waiting for input counts
// as open) and it does not signal or kill anything. Linux only.
package proctree
