// Package t3test is a faithful fake of t3 (T3 Code), built the way
// net/http/httptest is: for tests of anything that pairs browsers into t3
// instances, probes their sessions, backs up their state or rolls their
// binary forward.
//
// # State
//
// A fake instance keeps its state where a real one does, in a real SQLite
// database under a base dir (<baseDir>/userdata/state.sqlite, or
// statev2.sqlite for era E), with the migration ledger, the auth tables and
// the projection tables described in T3-CONTRACT.md. [Migrate] runs an era's
// pending migrations exactly as a real build does at start and before every
// `t3 auth` command; [SeedState] makes a populated database; [SetActiveTurn]
// starts or ends a turn for idle-gate tests; [LiveDB] says which file is live.
//
//	dir := t.TempDir()
//	if err := t3test.SeedState(dir, t3test.EraC, t3test.SeedOptions{Threads: 5}); err != nil {
//		t.Fatal(err)
//	}
//	_ = t3test.LiveDB(dir) // <dir>/userdata/state.sqlite, ledger max 32
//
// # Eras
//
// [Era] A through E stand for the families of real builds (see [EraFor]):
// the pairing route (bootstrap vs browser-session), role vs scopes, the
// session cookie's naming rule and which database is live.
//
// # What it does not do
//
// It does not run agents, keep orchestration events meaningful or serve the
// real web app: only what pairing, session checks, backups, idle detection and
// health checks observe.
package t3test
