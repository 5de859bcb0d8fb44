// Package proctree is an idlegate.IdleOracle over the instance's process
// tree, read from /proc: an agent CLI (claude, codex, opencode) running
// anywhere below the instance's main process means it has open agent
// sessions, so it is not idle.
//
//	o := &proctree.Oracle{MainPID: func(ctx context.Context, in t3fleet.Instance) (int, error) {
//		st, err := units.Status(ctx, unitFor(in))
//		return st.MainPID, err
//	}}
//	gate := idlegate.All(idlegate.NewDBOracle(idlegate.DBOptions{}), o)
//
// The main PID comes from a func field, so any unit manager (systemd's
// MainPID, a supervisor's child) can feed it.
//
// It does not look inside the processes (an agent waiting for input counts
// as open) and it does not signal or kill anything. Linux only.
package proctree
