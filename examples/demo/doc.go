// Command demo runs a small t3 fleet on this machine and narrates, line by
// line, what the updater does to it:
//
//	go run ./examples/demo [-v] [-keep] [-registry auto|fake]
//
// Three fake users (alice, bob, carol) run fake t3 builds (t3test's CLI)
// under the process supervisor, with the dispatch (pairing handler, the
// seed's dispatch.json) in front and a local registry (a real Verdaccio when
// one is installed, else an in-process stand-in). Then:
//
//  1. a good nightly rolls out; carol is mid-turn, so she is deferred;
//  2. carol's turn ends; migrate-idle drains her (the window set to now);
//  3. a nightly whose migration throws is caught by the health check;
//  4. a nightly that breaks pairing on bob's data fails bob's canary: the
//     restarted users' databases are restored, the fleet goes back to the
//     good build and is frozen;
//  5. alice's instance comes up wedged (accepts, never answers): the
//     watchdog restarts it after three failed probes, despite the freeze;
//  6. `updater status`.
//
// No root, no systemd, no network beyond loopback; everything lives in a
// temp dir removed at exit (-keep leaves it).
package main
