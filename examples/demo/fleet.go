package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/adapters/npm"
	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
	"github.com/t3fleet/t3fleet/adapters/supervisor"
	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/pairing"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// The builds the demo publishes. Eras from T3-CONTRACT.md: the fleet starts
// on era B; the good nightly is era C (migrations 31-32, sessions wiped).
const (
	vStart  = "0.0.27-nightly.20260601.1"
	vGood   = "0.0.31-nightly.20260616.571"
	vBad    = "0.0.32-nightly.20260617.600" // its migration throws
	vBreaks = "0.0.33-nightly.20260618.700" // pairing breaks on bob's data
)

// installer is what the demo needs of the side-by-side tree.
type installer interface {
	rollout.Installer
	BinFor(version string) (string, error)
}

// fleet is everything the demo runs, all under one temp dir.
type fleet struct {
	dir, home, envDir string
	users             []string
	ports             map[string]int
	cli               string
	verdaccio         *npmtest.Registry // nil: the in-process fallback
	publish           func(ctx context.Context, version string, faults t3test.Faults) error
	registry          rollout.Registry
	inst              installer
	stableBin         string // <prefix>/bin/t3 (npm) or <prefix>/current/t3 (fallback)
	sup               *supervisor.Supervisor
	dispatch          *httptest.Server
	store             *statebackup.Store

	mu     sync.Mutex
	faults map[string]map[string]string // version -> user -> T3FAKE_FAULTS for that user's serve
	once   map[string]string            // user -> T3FAKE_FAULTS for that user's next start only
}

// newFleet builds the fake CLI, starts the registry, installs vStart, seeds
// each user's database (busy: one turn in flight), starts the units under
// the supervisor and the dispatch in front.
func newFleet(ctx context.Context, dir string, users []string, busy string, fakeRegistry bool, say func(string, ...any)) (*fleet, error) {
	f := &fleet{dir: dir, home: filepath.Join(dir, "home"), envDir: filepath.Join(dir, "etc", "t3-serve"),
		users: users, ports: map[string]int{}, faults: map[string]map[string]string{}, once: map[string]string{},
		store: statebackup.NewStore(filepath.Join(dir, "backups"), statebackup.Options{})}
	var err error
	t0 := time.Now()
	if f.cli, err = t3test.BuildCLIInto(ctx, filepath.Join(dir, "cli")); err != nil {
		return nil, err
	}
	say("built the fake t3 CLI (t3test, eras A-E, fault switches) in %s", since(t0))

	prefix := filepath.Join(dir, "prefix")
	bin, ferr := npmtest.FindVerdaccio()
	if fakeRegistry {
		ferr = errors.New("-registry fake")
	}
	if ferr == nil {
		t0 = time.Now()
		reg, err := npmtest.Start(ctx, filepath.Join(dir, "verdaccio"), npmtest.Options{Verdaccio: bin})
		if err != nil {
			return nil, fmt.Errorf("start verdaccio: %w", err)
		}
		f.verdaccio = reg
		f.publish = func(ctx context.Context, v string, faults t3test.Faults) error {
			return reg.PublishT3(ctx, v, "nightly", npmtest.PublishOptions{CLI: f.cli, Faults: faults.String()})
		}
		f.registry = npm.NewRegistry(npm.RegistryOptions{URL: reg.URL, Token: npmtest.Token})
		sbs, err := npm.NewSideBySide(prefix, npm.SideBySideOptions{Env: reg.Env()})
		if err != nil {
			return nil, err
		}
		f.inst, f.stableBin = sbs, filepath.Join(prefix, npm.BinDir, "t3")
		say("registry: a real Verdaccio on %s (no uplink), up in %s; builds install side by side with npm under %s", reg.URL, since(t0), prefix)
	} else {
		fb := newFallbackRegistry(prefix, f.cli)
		f.publish = fb.publish
		f.registry, f.inst, f.stableBin = fb, fb, filepath.Join(prefix, "current", "t3")
		say("registry: in-process fake (not Verdaccio: %v); builds side by side under %s", ferr, prefix)
	}
	if err := f.publish(ctx, vStart, t3test.Faults{}); err != nil {
		return nil, err
	}
	b, err := f.inst.Stage(ctx, vStart)
	if err != nil {
		return nil, err
	}
	if err := f.inst.Activate(ctx, b); err != nil {
		return nil, err
	}

	if err := os.MkdirAll(f.envDir, 0o755); err != nil {
		return nil, err
	}
	table := map[string]hostfiles.DispatchEntry{}
	var specs []supervisor.UnitSpec
	ports, err := t3test.FreePorts(len(users))
	if err != nil {
		return nil, err
	}
	for i, u := range users {
		base := f.baseDir(u)
		opts := t3test.SeedOptions{Threads: 2 + 3*i, Now: time.Now().Add(-time.Hour)}
		if u == busy {
			opts.ActiveTurns = 1 // in flight since an hour ago
		}
		if err := t3test.SeedState(base, t3test.EraFor(vStart), opts); err != nil {
			return nil, err
		}
		port := ports[i]
		f.ports[u] = port
		table[u] = hostfiles.DispatchEntry{OSUser: u, Port: port, StateDir: base}
		env := fmt.Sprintf("# written by the demo, as the seed's provisioning does\nT3_PORT=\"%d\"\n", port)
		if err := os.WriteFile(filepath.Join(f.envDir, u+".env"), []byte(env), 0o644); err != nil {
			return nil, err
		}
		specs = append(specs, supervisor.UnitSpec{User: u, LogFile: filepath.Join(dir, "logs", u+".log"),
			Command: f.command(u), Ready: supervisor.ReadyTCP("127.0.0.1:" + strconv.Itoa(port))})
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if f.sup, err = supervisor.New(specs, supervisor.Options{StopTimeout: 3 * time.Second}); err != nil {
		return nil, err
	}
	for _, u := range users {
		if err := f.sup.Start(ctx, f.unit(u)); err != nil {
			return nil, fmt.Errorf("start %s: %w", u, err)
		}
	}

	dj, _ := json.MarshalIndent(table, "", "  ")
	djPath := filepath.Join(dir, "etc", "t3-serve", "dispatch.json")
	if err := os.WriteFile(djPath, dj, 0o644); err != nil {
		return nil, err
	}
	router, err := hostfiles.NewDispatchTable(djPath, hostfiles.DispatchTableOptions{})
	if err != nil {
		return nil, err
	}
	// The dispatch mints with the binary of the version each instance runs,
	// never blindly with the newest (a newer CLI migrates the database).
	minter, err := t3a.NewVersionMinter(f.inst.BinFor, t3a.VersionMinterOptions{})
	if err != nil {
		return nil, err
	}
	f.dispatch = httptest.NewServer(pairing.NewHandler(router, pairing.NewPairer(minter, pairing.PairerOptions{}),
		pairing.HandlerOptions{LoopGuardMax: -1}))
	return f, nil
}

func (f *fleet) baseDir(u string) string { return filepath.Join(f.home, u, ".t3") }

func (f *fleet) unit(u string) rollout.Unit {
	return rollout.Unit{Name: "t3-serve@" + u + ".service", User: u}
}

// command runs the stable bin (whatever is current at start), with the
// faults the demo switched on for this user on the current build.
func (f *fleet) command(u string) func(ctx context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		argv := []string{f.stableBin, "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(f.ports[u]), "--base-dir", f.baseDir(u)}
		v, err := f.inst.Current(ctx)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		fl := f.faults[v][u]
		if o, ok := f.once[u]; ok {
			fl = o
			delete(f.once, u)
		}
		if fl != "" {
			argv = append([]string{"/usr/bin/env", t3test.FaultsEnv + "=" + fl}, argv...)
		}
		return argv, nil
	}
}

// setFault makes user's serve start with faults while version is current.
func (f *fleet) setFault(version, user, faults string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.faults[version] == nil {
		f.faults[version] = map[string]string{}
	}
	f.faults[version][user] = faults
}

// faultOnce makes user's next start run with faults.
func (f *fleet) faultOnce(user, faults string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.once[user] = faults
}

// engine wires the rollout engine over the real adapters.
func (f *fleet) engine(logger *slog.Logger, onEvent func(rollout.Event)) (*rollout.Engine, error) {
	ver, err := t3a.NewDispatchVerifier(f.dispatch.URL, t3a.DispatchVerifierOptions{Timeout: 6 * time.Second})
	if err != nil {
		return nil, err
	}
	scratch := filepath.Join(f.dir, "scratch")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return nil, err
	}
	// Each instance says which build it runs, as the updater's do: the
	// engine checks a restarted one runs the target, and status shows it.
	units := t3a.ReportingUnits{UnitManager: f.sup, Timeout: time.Second, BaseURL: func(u rollout.Unit) (string, error) {
		port, ok := f.ports[u.User]
		if !ok {
			return "", fmt.Errorf("no instance for %s", u.User)
		}
		return "http://127.0.0.1:" + strconv.Itoa(port), nil
	}}
	return &rollout.Engine{
		Units: units, Registry: f.registry, Installer: f.inst, Backups: f.store,
		// The demo's users are names, not accounts: every file is this
		// process's, so its builds run as this process's user, even as
		// root (a real updater runs them as the seed's owner).
		Health: t3a.NewHealthChecker(t3a.HealthCheckerOptions{TempDir: scratch, ReadyTimeout: 10 * time.Second,
			RunAs: &statebackup.Owner{UID: os.Geteuid(), GID: os.Getegid()}}),
		Verifier: ver,
		// A short quiet threshold: the demo's "idle" user went quiet a moment ago.
		Idle:    idlegate.NewDBOracle(idlegate.DBOptions{QuietThreshold: 2 * time.Second}),
		Locator: rollout.HomeLocator{Root: f.home},
		Options: rollout.Options{StateDir: filepath.Join(f.dir, "var", "lib", "t3-autoupdate"),
			FreezeFile: filepath.Join(f.dir, "etc", "t3-autoupdate.freeze"), TmpDir: scratch,
			LockWait: -1, VerifyTimeout: 6 * time.Second, HealthTimeout: 20 * time.Second,
			Who: "demo", Logger: logger, OnEvent: onEvent},
	}, nil
}

// serverVersion asks an instance which build it runs, as the engine's
// verify step does (t3.ServerVersion), for the narration.
func (f *fleet) serverVersion(ctx context.Context, u string) string {
	v, err := t3a.ServerVersion(ctx, nil, time.Second, "http://127.0.0.1:"+strconv.Itoa(f.ports[u]))
	if err != nil {
		return "(no answer)"
	}
	return v
}

// ledger is the schema level of a user's live database.
func (f *fleet) ledger(u string) int {
	n, err := t3test.ReadLedgerMax(t3test.LiveDB(f.baseDir(u)))
	if err != nil {
		return -1
	}
	return n
}

func (f *fleet) close() {
	if f.dispatch != nil {
		f.dispatch.Close()
	}
	if f.sup != nil {
		f.sup.Close()
	}
	if f.verdaccio != nil {
		f.verdaccio.Close()
	}
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }
