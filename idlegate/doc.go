// Package idlegate decides whether a t3 instance is idle enough to restart,
// and fails closed: any doubt is "not idle", with the reason.
//
// # Oracles
//
// An [IdleOracle] returns a [Verdict]: Idle, a human Reason, the turns in
// flight, how long the instance has been quiet, and Suspicious when a turn
// has been in flight longer than the busy ceiling (so the caller can alert;
// the verdict stays not idle).
//
//   - [DBOracle] reads the instance's live state database read-only
//     (state.sqlite, or statev2.sqlite where a newer build moved the live
//     state; when state.sqlite only looks newer by its file time, the runs
//     of the statev2.sqlite beside it count too): turns in flight
//     (active_turn_id IS NOT NULL; statev2: runs in an active status, its
//     frozen copy of the thread sessions ignored) and
//     the newest timestamp, which must be at least
//     [DBOptions.QuietThreshold] (default 900 s) ago. A missing database or
//     table, an unparseable or future timestamp, a lock held past the busy
//     timeout, any error: not idle. An empty table is idle.
//
//   - adapters/proctree offers an oracle over the instance's processes
//     (an agent named claude, codex or opencode below its main process or
//     in its unit's cgroup means not idle).
//
//   - [All] combines oracles: idle only if every one says idle.
//
// For example:
//
//	gate := idlegate.All(idlegate.NewDBOracle(idlegate.DBOptions{}), procOracle)
//	v, err := gate.Idle(ctx, inst)
//	if err != nil || !v.Idle {
//		// defer the restart; log v.Reason; alert when v.Suspicious
//	}
//
// # Running as root
//
// [DBOracle] finds the live database and its owner in the user's
// directory opened once ([statebackup.LiveDBOwner]), then reads it, and a
// statev2.sqlite beside it, with that owner's filesystem rights
// ([statebackup.AsOwner]): SQLite opens the files by path, and the user can
// swap ~/.t3 for a symlink into another user's tree at any moment; as the
// owner, the swap reaches nothing the user could not read anyway. Any -shm
// SQLite creates is the owner's, so the gate chowns nothing.
//
// # What it does not do
//
// It never writes to the database, never takes a write lock, and does not
// decide what to do with a verdict: rollout defers the restart.
package idlegate
