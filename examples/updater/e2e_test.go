package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/npm"
	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
	"github.com/t3fleet/t3fleet/statebackup"
)

// The end-to-end fleet: a real Verdaccio with fake t3 builds, the real npm
// Registry and SideBySide installer, real SQLite state databases (t3test's
// schema, migrated per era) and real statebackup snapshots. Units are
// simulated: a restart runs the era migrations of the build now current, as
// a real `t3 serve` does at start.
const (
	e2eOld  = "0.0.27-nightly.20260601.1"   // era B, ledger max 30
	e2eNew  = "0.0.31-nightly.20260616.571" // era C: migrations 31, 32
	e2eBack = "0.0.26-nightly.20260520.9"
)

type e2eFleet struct {
	t        *testing.T
	reg      *npmtest.Registry
	inst     *npm.SideBySide
	store    *statebackup.Store
	home     string
	prefix   string
	users    []string
	mu       sync.Mutex
	busy     map[string]bool
	failUser string // verification fails for this user on e2eNew
	running  map[string]string
	restarts []string
	atStart  map[string]string // sha256 of the live database when the unit last started
	badBuild string            // the health check's migration fails for this version
}

func newE2EFleet(t *testing.T) *e2eFleet {
	t.Helper()
	ctx := context.Background()
	reg := npmtest.New(t, npmtest.Options{})
	for _, v := range []string{e2eBack, e2eOld, e2eNew} {
		require.NoError(t, reg.PublishT3(ctx, v, "nightly", npmtest.PublishOptions{}))
	}
	dir := t.TempDir()
	prefix := filepath.Join(dir, "prefix")
	inst, err := npm.NewSideBySide(prefix, npm.SideBySideOptions{Env: reg.Env()})
	require.NoError(t, err)
	b, err := inst.Stage(ctx, e2eOld)
	require.NoError(t, err)
	require.NoError(t, inst.Activate(ctx, b))
	f := &e2eFleet{t: t, reg: reg, inst: inst, store: statebackup.NewStore(filepath.Join(dir, "backups"), statebackup.Options{}),
		home: filepath.Join(dir, "home"), prefix: prefix, users: []string{"alice", "bob", "carol"}, busy: map[string]bool{}, running: map[string]string{}, atStart: map[string]string{}}
	for i, u := range f.users {
		require.NoError(t, t3test.SeedState(f.baseDir(u), t3test.EraFor(e2eOld), t3test.SeedOptions{Threads: 2 + 3*i}))
		f.running[u] = e2eOld
	}
	return f
}

func (f *e2eFleet) baseDir(u string) string { return filepath.Join(f.home, u, ".t3") }

func (f *e2eFleet) engine(o rollout.Options) *rollout.Engine {
	dir := f.t.TempDir()
	o.StateDir = filepath.Join(dir, "state")
	o.FreezeFile = filepath.Join(dir, "freeze")
	o.LockWait = -1
	o.TmpDir = dir
	o.Logger = npmtest.Logger(f.t)
	units := &rollouttest.UnitManager{
		UnitsFunc: func(context.Context) ([]rollout.Unit, error) {
			var out []rollout.Unit
			for _, u := range f.users {
				out = append(out, rollout.Unit{Name: "t3-serve@" + u + ".service", User: u})
			}
			return out, nil
		},
		RestartFunc: f.start, StartFunc: f.start,
		RunningVersionFunc: func(_ context.Context, u rollout.Unit) (string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.running[u.User], nil
		},
	}
	return &rollout.Engine{
		Units: units, Installer: f.inst, Backups: f.store,
		Registry: npm.NewRegistry(npm.RegistryOptions{URL: f.reg.URL, Token: npmtest.Token}),
		Locator:  rollout.HomeLocator{Root: f.home},
		Idle: &rollouttest.IdleOracle{IdleFunc: func(_ context.Context, in t3fleet.Instance) (idlegate.Verdict, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return idlegate.Verdict{Idle: !f.busy[in.OSUser], Reason: "e2e"}, nil
		}},
		Health: &rollouttest.HealthChecker{CheckFunc: f.health},
		Verifier: &rollouttest.Verifier{VerifyPairingFunc: func(_ context.Context, user string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if user == f.failUser && f.running[user] == e2eNew {
				return fmt.Errorf("pairing %s: exchange returned 500", user)
			}
			return nil
		}},
		Options: o,
	}
}

// start runs the current build's migrations on the unit's database.
func (f *e2eFleet) start(ctx context.Context, u rollout.Unit) error {
	v, err := f.inst.Current(ctx)
	if err != nil {
		return err
	}
	sum := fileSHA(f.t, t3test.LiveDB(f.baseDir(u.User)))
	if err := t3test.Migrate(ctx, f.baseDir(u.User), t3test.EraFor(v)); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.atStart[u.User] = sum
	f.running[u.User] = v
	f.restarts = append(f.restarts, u.User)
	return nil
}

// health migrates a copy of the seed snapshot with the staged build's era.
func (f *e2eFleet) health(ctx context.Context, b rollout.Build, seed string) (rollout.HealthReport, error) {
	if _, err := os.Stat(b.Bin); err != nil {
		return rollout.HealthReport{}, fmt.Errorf("staged bin: %w", err)
	}
	if b.Version == f.badBuild {
		return rollout.HealthReport{Passed: false, Reason: `Migration "31_AuthAuthorizationScopes" failed`}, nil
	}
	dir := f.t.TempDir()
	data, err := os.ReadFile(seed)
	if err != nil {
		return rollout.HealthReport{}, err
	}
	require.NoError(f.t, os.MkdirAll(t3test.UserDataDir(dir), 0o755))
	require.NoError(f.t, os.WriteFile(t3test.StateDB(dir), data, 0o644))
	if err := t3test.Migrate(ctx, dir, t3test.EraFor(b.Version)); err != nil {
		return rollout.HealthReport{Passed: false, Reason: err.Error()}, nil
	}
	lvl, err := t3test.ReadLedgerMax(t3test.LiveDB(dir))
	return rollout.HealthReport{Passed: err == nil, Schema: lvl}, err
}

func (f *e2eFleet) ledger(u string) int {
	lvl, err := t3test.ReadLedgerMax(t3test.LiveDB(f.baseDir(u)))
	require.NoError(f.t, err)
	return lvl
}

func TestE2EGoodNightlyDefersBusyUser(t *testing.T) {
	f := newE2EFleet(t)
	f.busy["carol"] = true
	e := f.engine(rollout.Options{})
	t0 := time.Now()
	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeDone, res.Outcome, res.Line())
	t.Logf("bump took %s (%s)", time.Since(t0), res.Line())
	require.Equal(t, []string{"alice", "bob"}, res.Restarted)
	require.Equal(t, []string{"carol"}, res.Deferred)
	cur, err := f.inst.Current(context.Background())
	require.NoError(t, err)
	require.Equal(t, e2eNew, cur)
	require.Equal(t, 32, f.ledger("alice"))
	require.Equal(t, 32, f.ledger("bob"))
	require.Equal(t, 30, f.ledger("carol"), "busy user's database untouched")
	m, err := e.State().Marker("carol")
	require.NoError(t, err)
	require.Equal(t, e2eNew, m.Target)
	for _, u := range f.users {
		snaps, err := f.store.List(context.Background(), statebackup.Target{User: u, UserdataDir: t3test.UserDataDir(f.baseDir(u))})
		require.NoError(t, err)
		require.True(t, slices.ContainsFunc(snaps, func(s statebackup.Snapshot) bool { return s.Label == "prebump-"+e2eNew && s.SchemaLevel == 30 }), u)
	}
}

func TestE2EMigrationFailureCaughtByHealthCheck(t *testing.T) {
	f := newE2EFleet(t)
	f.badBuild = e2eNew
	e := f.engine(rollout.Options{})
	res, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrHealthCheckFailed)
	require.Contains(t, res.Line(), `HEALTH-CHECK FAILED (Migration "31_AuthAuthorizationScopes" failed)`)
	require.Empty(t, f.restarts)
	cur, err := f.inst.Current(context.Background())
	require.NoError(t, err)
	require.Equal(t, e2eOld, cur)
	_, err = os.Stat(filepath.Join(f.prefix, npm.VersionsDir, e2eNew))
	require.True(t, os.IsNotExist(err), "stage dropped")
}

func TestE2ECanaryFailureRestoresByteIdenticalAndFreezes(t *testing.T) {
	f := newE2EFleet(t)
	f.failUser = "bob"
	e := f.engine(rollout.Options{})
	res, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrRolledBack, res.Line())
	require.Equal(t, []string{"alice", "bob", "bob", "alice"}, f.restarts, "alice then bob moved; both put back, the failed one first")
	cur, err := f.inst.Current(context.Background())
	require.NoError(t, err)
	require.Equal(t, e2eOld, cur, "binary rolled back without the network")
	for _, u := range []string{"alice", "bob"} {
		snaps, err := f.store.List(context.Background(), statebackup.Target{User: u, UserdataDir: t3test.UserDataDir(f.baseDir(u))})
		require.NoError(t, err)
		i := slices.IndexFunc(snaps, func(s statebackup.Snapshot) bool { return s.Label == "prebump-"+e2eNew })
		require.GreaterOrEqual(t, i, 0)
		// What the old build found when it started again: the snapshot, byte for byte.
		require.Equal(t, fileSHA(t, snaps[i].Path), f.atStart[u], "%s's database is byte-identical to its prebump snapshot", u)
		require.Equal(t, 30, f.ledger(u))
	}
	res, err = e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeFrozen, res.Outcome)
}

func TestE2EBackwardDistTagRefused(t *testing.T) {
	f := newE2EFleet(t)
	require.NoError(t, f.reg.MoveTag(context.Background(), "nightly", e2eBack))
	e := f.engine(rollout.Options{})
	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeRefused, res.Outcome)
	require.Contains(t, res.Reason, "not newer")
	require.Empty(t, f.restarts)
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return fmt.Sprintf("%x", sha256.Sum256(b))
}
