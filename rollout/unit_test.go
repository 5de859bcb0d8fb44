package rollout_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
	"github.com/t3fleet/t3fleet/statebackup"
)

func member(t *testing.T, e *rollout.Engine, user string) rollout.Member {
	t.Helper()
	fleet, err := e.Fleet(context.Background())
	require.NoError(t, err)
	for _, m := range fleet {
		if m.Unit.User == user {
			return m
		}
	}
	t.Fatalf("no member %s", user)
	return rollout.Member{}
}

func TestCycle(t *testing.T) {
	cases := []struct {
		name       string
		fail       bool
		wantErr    error
		wantFrozen bool
	}{
		{"restart verifies", false, nil, false},
		{"failure restores and freezes", true, rollout.ErrRolledBack, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := newSim(t)
			// bob was deferred: the fleet is on v2, bob still runs v1.
			e := sim.Engine(rollout.Options{})
			require.NoError(t, sim.Installer().ActivateFunc(context.Background(), mustStage(t, sim, v2)))
			if c.fail {
				sim.FailCanary(v2, "bob")
			}
			before, err := os.ReadFile(sim.DBPath("bob"))
			require.NoError(t, err)

			err = e.Cycle(context.Background(), member(t, e, "bob"), rollout.CycleOptions{Label: "pre-migrate-idle", Version: v2, RollbackTo: v1})
			if c.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, v2, sim.User("bob").Version)
			} else {
				require.ErrorIs(t, err, c.wantErr)
				after, rerr := os.ReadFile(sim.DBPath("bob"))
				require.NoError(t, rerr)
				require.Equal(t, before, after, "bob's database restored byte for byte")
				require.Contains(t, sim.Calls(), "restore bob")
				require.Equal(t, v1, sim.User("bob").Version)
				require.Equal(t, v1, sim.Current())
			}
			fr, err := e.Freezer().Read()
			require.NoError(t, err)
			require.Equal(t, c.wantFrozen, fr != nil)
			require.Contains(t, sim.Calls(), "backup bob pre-migrate-idle")
		})
	}
}

func mustStage(t *testing.T, sim *rollouttest.Sim, v string) rollout.Build {
	t.Helper()
	b, err := sim.Installer().Stage(context.Background(), v)
	require.NoError(t, err)
	return b
}

// A global install stages nothing before Activate: the health check must run
// on a scratch side-by-side candidate, never skip.
func TestHealthCheckOfBinarylessBuild(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{TmpDir: t.TempDir()})
	inner := sim.Installer()
	e.Installer = &rollouttest.Installer{
		CurrentFunc: inner.CurrentFunc,
		StageFunc: func(ctx context.Context, v string) (rollout.Build, error) {
			_, err := inner.StageFunc(ctx, v)
			return rollout.Build{Version: v}, err
		},
		ActivateFunc: inner.ActivateFunc,
		DropFunc:     inner.DropFunc,
	}
	var checked rollout.Build
	e.Health = &rollouttest.HealthChecker{CheckFunc: func(_ context.Context, b rollout.Build, _ string) (rollout.HealthReport, error) {
		checked = b
		_, err := os.Stat(b.Dir)
		return rollout.HealthReport{Passed: err == nil}, nil
	}}
	var scratchMode os.FileMode
	e.CandidateInstaller = func(dir string) rollout.Installer {
		return &rollouttest.Installer{StageFunc: func(_ context.Context, v string) (rollout.Build, error) {
			if fi, err := os.Stat(dir); err == nil {
				scratchMode = fi.Mode().Perm()
			}
			d := filepath.Join(dir, v)
			return rollout.Build{Version: v, Dir: d, Bin: filepath.Join(d, "t3")}, os.MkdirAll(d, 0o755)
		}}
	}
	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeDone, res.Outcome)
	require.Equal(t, v2, checked.Version)
	require.NotEmpty(t, checked.Bin)
	// A health checker run as root runs the build as another user, who
	// must reach it: the candidate's scratch is open as a prefix is.
	require.Equal(t, os.FileMode(0o755), scratchMode, "the candidate's scratch lets the build's user through")
	_, err = os.Stat(checked.Dir)
	require.True(t, os.IsNotExist(err), "scratch removed")
}

// The dispatch knows users by their SSO name: verification must use it.
func TestVerifierGetsSSOName(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{})
	home := rollout.HomeLocator{Root: filepath.Join(sim.Dir, "home")}
	e.Locator = rollout.LocatorFunc(func(ctx context.Context, u rollout.Unit) (t3fleet.Instance, error) {
		in, err := home.Locate(ctx, u)
		in.User = u.User + ".sso"
		return in, err
	})
	var got []string
	e.Verifier = &rollouttest.Verifier{VerifyPairingFunc: func(_ context.Context, user string) error {
		got = append(got, user)
		return nil
	}}
	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeDone, res.Outcome)
	// alice twice: the path check on the current build, then her canary.
	require.Equal(t, []string{"alice.sso", "alice.sso", "bob.sso", "carol.sso", "zed.sso"}, got)
}

// The path check never pairs a user a previous run deferred: that instance
// still runs an older build, and a dispatch minting with the current CLI
// would migrate its database under it. Its canary, after the restart, does.
func TestPathCheckSkipsDeferredUsers(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{})
	require.NoError(t, e.State().Defer("alice", v1))
	var got []string
	verify := sim.Verifier()
	e.Verifier = &rollouttest.Verifier{VerifyPairingFunc: func(ctx context.Context, user string) error {
		got = append(got, user)
		return verify.VerifyPairing(ctx, user)
	}}
	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeDone, res.Outcome, res.Line())
	require.Equal(t, []string{"bob", "alice", "bob", "carol", "zed"}, got, "bob checks the path, alice pairs after her restart")
}

// The staging starts as soon as the target is known, so the npm install
// overlaps the path check and the backups. A run the path check stops
// leaves no install running behind it (it would hold the stage directory
// and the network after the updater has said it stopped).
func TestRunStopsTheStagingWhenThePathCheckFails(t *testing.T) {
	sim := newSim(t)
	for _, u := range sim.Users() {
		sim.FailCanary(v1, u)
	}
	e := sim.Engine(rollout.Options{})
	started, ended := make(chan struct{}), make(chan struct{})
	e.Installer.(*rollouttest.Installer).StageFunc = func(ctx context.Context, v string) (rollout.Build, error) {
		close(started)
		defer close(ended)
		<-ctx.Done() // an install slower than the path check
		return rollout.Build{}, ctx.Err()
	}
	res, err := e.Run(context.Background())
	require.Error(t, err)
	require.Contains(t, res.Line(), "before any change")
	select {
	case <-started:
	default:
		t.Fatal("the staging did not start alongside the path check")
	}
	select {
	case <-ended:
	default:
		t.Fatal("the staging still runs after Run returned")
	}
}

// A rollback step that fails for one unit (its stop, or its restore) must
// not then put that unit on the previous build over the database the
// target migrated: the runbook says a failed `stop U` leaves U on the new
// build and a failed `restore U` leaves U stopped, for a person to restore
// (`updater restore --latest-prebump --stop`). Starting the old build on a
// migrated database is the 2026-06-09 outage the rollback exists to avoid.
func TestRollbackNeverStartsTheOldBuildOnAMigratedDatabase(t *testing.T) {
	errInjected := errors.New("injected")
	cases := []struct {
		name    string
		running bool // what the runbook says bob is left as
		breakIt func(e *rollout.Engine)
	}{
		{"restore fails", false, func(e *rollout.Engine) {
			b := e.Backups.(*rollouttest.Backuper)
			restore := b.RestoreFunc
			b.RestoreFunc = func(ctx context.Context, tg statebackup.Target, s statebackup.Snapshot) error {
				if tg.User == "bob" {
					return errInjected
				}
				return restore(ctx, tg, s)
			}
		}},
		{"stop fails", true, func(e *rollout.Engine) {
			um := e.Units.(*rollouttest.UnitManager)
			stop := um.StopFunc
			um.StopFunc = func(ctx context.Context, u rollout.Unit) error {
				if u.User == "bob" {
					return errInjected
				}
				return stop(ctx, u)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim := newSim(t)
			sim.FailCanary(v2, "bob")
			e := sim.Engine(rollout.Options{})
			tc.breakIt(e)

			res, err := e.Run(context.Background())
			require.ErrorIs(t, err, rollout.ErrRollbackFailed, res.Line())

			bob := sim.User("bob")
			schema, err := sim.DBSchema("bob")
			require.NoError(t, err)
			require.Equal(t, v2, schema, "bob's database was not restored")
			require.Equal(t, tc.running, bob.Running, "calls: %v", callsFor(sim, "bob"))
			if bob.Running {
				require.Equal(t, v2, bob.Version,
					"bob runs %s on a database migrated to %s; calls: %v", bob.Version, schema, callsFor(sim, "bob"))
			}
		})
	}
}

func callsFor(sim *rollouttest.Sim, user string) []string {
	var out []string
	for _, c := range sim.Calls() {
		if strings.HasSuffix(c, " "+user) {
			out = append(out, c)
		}
	}
	return out
}
