// Package hostfiles reads the operator's existing host files so the module
// drops into a machine that runs the seed's scripts today, starting with the
// dispatch's routing table, /etc/t3-serve/dispatch.json, as a
// pairing.Router ([DispatchTable]), and the per-user env files,
// /etc/t3-serve/<user>.env, that name each instance's port
// ([EnvFileBaseURL]). [TCPTable] reads the kernel's socket tables,
// /proc/net/tcp and tcp6, to tell which OS user owns a local peer's socket:
// the dispatch's pairing.PeerOwner.
//
// # Example
//
//	tbl, err := hostfiles.NewDispatchTable(hostfiles.DefaultDispatchTable, hostfiles.DispatchTableOptions{})
//	in, ok := tbl.Route("emil.barzin") // in.BaseURL == "http://127.0.0.1:3801"
//
// # What it does not do
//
// TCPTable works on Linux only (elsewhere every lookup fails, so an owner
// check fails closed), and within its own network namespace.
//
// It never writes the host's files, and it never lets a bad edit take
// effect: a file that does not parse or holds an invalid name keeps the last
// good table in use. It watches by polling on lookup (no inotify).
package hostfiles
