// Package npmtest runs a real npm registry (Verdaccio) on loopback for tests
// and demos, and publishes fake t3 packages to it.
//
// A Registry is started with no uplink (nothing leaves the machine),
// anonymous publish and its storage in a directory of your choice; a private
// npm environment (user config, cache, global prefix) points at it, so
// nothing touches the machine's npm config:
//
//	reg := npmtest.New(t, npmtest.Options{}) // skips without Verdaccio
//	err := reg.PublishT3(ctx, "0.0.25", "latest", npmtest.PublishOptions{CLI: fakeCLI, Era: "B"})
//	err = reg.MoveTag(ctx, "nightly", "0.0.24") // backward is fine
//	cmd.Env = reg.Environ()                      // npm now talks to reg
//
// Outside tests (a demo), use Start and Close.
//
// # Finding Verdaccio
//
// $T3FLEET_VERDACCIO, then `verdaccio` on PATH, then
// /opt/verdaccio/node_modules/.bin/verdaccio. New skips the test when none is
// found, unless T3FLEET_REQUIRE_REAL=1, which turns that into a failure.
//
// It does not build the fake t3 CLI (see adapters/t3/t3test) and never
// reaches a registry other than its own.
package npmtest
