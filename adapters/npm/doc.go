// Package npm implements rollout's Registry and Installer over npm: dist-tag
// resolution over the registry's JSON API, and two installers over the npm
// CLI.
//
// # Registry
//
// Registry.Resolve reads GET <registry>/<package> and returns the version a
// dist-tag points at with its publish time. The registry URL comes from
// RegistryOptions.URL or, once, from `npm config get registry`; the matching
// `//host/:_authToken=` line of npm's user config is sent as a Bearer token.
// A tag that moved backward is reported as it is: refusing it is the rollout
// engine's job.
//
// # Installers
//
// SideBySide keeps every version in its own directory and switches a
// symlink atomically, so a running instance keeps its own files and a
// rollback needs no network:
//
//	<prefix>/versions/<v>/node_modules/.bin/t3
//	<prefix>/current -> versions/<v>
//	<prefix>/bin/t3  -> ../current/node_modules/.bin/t3
//
// Global is the seed's `npm i -g t3@<v>` layout: Stage records, Activate
// installs over the running version, Drop does nothing.
//
//	inst, err := npm.NewSideBySide("/opt/t3", npm.SideBySideOptions{Logger: log})
//	b, err := inst.Stage(ctx, "0.0.30-nightly.20260902.101") // npm install into a temp dir, renamed
//	err = inst.Activate(ctx, b)                              // current -> versions/0.0.30-...
//	bin, err := inst.BinFor("0.0.25")                        // mint with the instance's own build
//
// Every version string is checked with ValidVersion (canonical semver,
// hashicorp/go-version) before it reaches an argv or a path; npm runs with
// argv, never through a shell, and every call is logged with its duration.
//
// It does not decide what to install (rollout does), does not restart
// anything, and does not start a registry (see npmtest).
package npm
