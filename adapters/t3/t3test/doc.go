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
// the projection tables t3 has (docs/t3test.md lists what the fake follows
// and where it comes from). [Migrate] runs an era's
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
// # Server
//
// [NewServer] starts a fake `t3 serve` on a real loopback listener, like
// httptest.NewServer; register t.Cleanup(srv.Close). It serves the routes of
// t3's HTTP contract for its era (/api/auth/bootstrap in era A only,
// /api/auth/browser-session from B on, 404 for the other), a session check
// that always answers 200, signed session cookies named by t3's rules
// ([CookieNameFor]), a WebSocket at /ws that echoes, and an index page whose
// script reports into #session and #ws for browser tests.
//
//	srv := t3test.NewServer(t.TempDir(), t3test.Options{Era: t3test.EraC, User: "emil"})
//	t.Cleanup(srv.Close)
//	cred, _ := srv.Mint(0) // the same code path as `t3 auth pairing create`
//	// POST srv.URL+"/api/auth/browser-session" {"credential": cred} -> Set-Cookie srv.CookieName()
//
// [Faults] switch on the failure modes worth testing: exchange 200 without
// Set-Cookie, a migration that throws at start, pairing broken while GET /
// is 200, a wedged listener, a slow start. Reused or expired credentials,
// revoked sessions and an old build on a forward-migrated database fail on
// their own, because the fake runs real SQL.
//
// # CLI
//
// cmd/t3fake is the fake `t3` binary (--version, serve, auth pairing
// create), configured by T3FAKE_VERSION, T3FAKE_ERA and T3FAKE_FAULTS.
// [BuildCLI] builds it once per test process; [WriteBuild] writes a script
// standing for one installed version; [WritePrefix] and [SwitchCurrent] lay
// several out side by side under a `current` link, and [ServerVersion] asks
// a running one which build answers. Its `auth pairing create` runs the
// era's pending migrations first, as the real CLI does. [FreePorts] gives a
// fleet of such processes distinct ports for `serve --port`.
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
