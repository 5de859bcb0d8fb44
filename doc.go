// Package t3fleet holds the few nouns every part of the module shares: an
// [Instance] (one user's t3 server), the validation of the names that
// identify it, and [GetAnswered], the one way to ask an instance that may
// have just started (t3 accepts connections before it answers them).
//
// The work is done in the domain packages, which declare the interfaces they
// consume:
//
//   - [github.com/t3fleet/t3fleet/pairing]: who the user is, which instance is
//     theirs, and the HTTP handler that pairs a browser on demand.
//   - [github.com/t3fleet/t3fleet/sessionprobe]: is this a page load; is this
//     cookie still a live session.
//   - [github.com/t3fleet/t3fleet/statebackup]: verified online snapshots of a
//     user's SQLite state.
//   - [github.com/t3fleet/t3fleet/idlegate]: is an instance idle enough to
//     restart (fails closed).
//   - [github.com/t3fleet/t3fleet/rollout]: the gated bump of the shared binary.
//
// adapters/ implements those interfaces over real things (systemd, npm, the t3
// CLI, the host's files) and adapters/t3/t3test is a faithful fake t3.
package t3fleet
