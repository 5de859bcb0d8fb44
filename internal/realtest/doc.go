// Package realtest holds the one rule every test of a real part follows
// (headless Chromium, Verdaccio, systemd, nginx, wrk, sqlite3, root): a
// part the machine lacks skips the test, unless T3FLEET_REQUIRE_REAL=1 makes
// that a failure. .ci/run installs the parts and sets it, so on CI no such
// test can pass by being skipped. Beside it are the real parts a test as
// root makes for itself: a disk that fills up (Tmpfs, FillTo) and a path
// another user races (OpenPath, SwapWithSymlink).
package realtest
