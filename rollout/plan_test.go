package rollout_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

func TestPlanTouchesNothing(t *testing.T) {
	sim := newSim(t)
	sim.SetBusy("carol", true)
	e := sim.Engine(rollout.Options{OperatorUser: "alice"})
	p, err := e.Plan(context.Background(), rollout.PlanOptions{})
	require.NoError(t, err)
	require.True(t, p.Go, strings.Join(p.Lines(), "\n"))
	require.Equal(t, v2, p.Target)
	require.Equal(t, "zed", p.Seed, "largest database seeds the health check")
	var order, actions []string
	for _, u := range p.Users {
		order = append(order, u.User)
		actions = append(actions, u.Action)
	}
	require.Equal(t, []string{"bob", "carol", "zed", "alice"}, order)
	require.Equal(t, []string{"restart", "defer", "restart", "restart"}, actions)
	// Four backups two at a time run alongside the staging, which is longer.
	require.Equal(t, max(2*rollout.EstimateBackup, rollout.EstimateStage)+rollout.EstimateHealth+3*rollout.EstimateRestart, p.Expected)
	require.Empty(t, sim.Calls(), "plan changes nothing")
	_, err = os.Stat(e.StateDir)
	require.True(t, os.IsNotExist(err), "plan creates no state")
	text := strings.Join(p.Lines(), "\n")
	require.Contains(t, text, "would roll out "+v1+" -> "+v2)
	require.Contains(t, text, "carol (t3-serve@carol.service) db=")
	// The path check tries running users in canary order, busy or not
	// (a pairing is no restart), never a deferred one; plan only names them.
	require.NoError(t, e.State().Defer("bob", v1))
	p, err = e.Plan(context.Background(), rollout.PlanOptions{})
	require.NoError(t, err)
	require.Equal(t, []string{"carol", "zed", "alice"}, p.PathUsers)
	require.Contains(t, strings.Join(p.Lines(), "\n"), "verification path: before any change, carol, zed, alice in turn")
	e.SkipPathCheck = true
	p, err = e.Plan(context.Background(), rollout.PlanOptions{})
	require.NoError(t, err)
	require.Empty(t, p.PathUsers)
	require.Contains(t, strings.Join(p.Lines(), "\n"), "verification path: not checked (--skip-path-check)")
}

func TestPlanReportsRefusalAndFreeze(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{})
	_, err := e.SetFreeze("investigating", "emil", time.Hour)
	require.NoError(t, err)
	sim.Publish("nightly", v1, time.Now())
	p, err := e.Plan(context.Background(), rollout.PlanOptions{})
	require.NoError(t, err)
	require.False(t, p.Go)
	text := strings.Join(p.Lines(), "\n")
	require.Contains(t, text, "FROZEN: investigating by emil")
	require.Contains(t, text, "refused: ")
}

func TestPlanCheckCandidate(t *testing.T) {
	for _, bad := range []bool{false, true} {
		sim := newSim(t)
		if bad {
			sim.FailHealth(v2, "no column named role")
		}
		// give the seed user a snapshot to feed the check
		_, err := sim.Backuper().Backup(context.Background(), rollout.Member{Unit: rollout.Unit{User: "zed"},
			Instance: mustLocate(t, sim, "zed")}.Target(v1), "daily")
		require.NoError(t, err)
		var stagedIn string
		e := sim.Engine(rollout.Options{TmpDir: t.TempDir(), CandidateInstaller: func(dir string) rollout.Installer {
			stagedIn = dir
			return &rollouttest.Installer{StageFunc: func(_ context.Context, v string) (rollout.Build, error) {
				return rollout.Build{Version: v, Dir: filepath.Join(dir, v)}, nil
			}}
		}})
		p, err := e.Plan(context.Background(), rollout.PlanOptions{CheckCandidate: true})
		require.NoError(t, err)
		require.NotNil(t, p.Candidate)
		require.Equal(t, !bad, p.Candidate.Passed, p.Candidate.Reason)
		require.NotEmpty(t, stagedIn)
		_, err = os.Stat(stagedIn)
		require.True(t, os.IsNotExist(err), "scratch removed")
		require.Equal(t, v1, sim.Current())
		require.NotContains(t, strings.Join(sim.Calls(), ","), "activate")
	}
}

func mustLocate(t *testing.T, sim *rollouttest.Sim, user string) t3fleet.Instance {
	t.Helper()
	in, err := rollout.HomeLocator{Root: filepath.Join(sim.Dir, "home")}.Locate(context.Background(), rollout.Unit{User: user})
	require.NoError(t, err)
	return in
}

// An installer that installs at Activate (npm's global layout) stages
// nothing beforehand: the plan counts the health check's scratch stage
// after the backups, and the install at activation.
func TestPlanExpectsTheGlobalInstallersInstalls(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{})
	e.Installer = installsAtActivation{e.Installer}
	p, err := e.Plan(context.Background(), rollout.PlanOptions{})
	require.NoError(t, err)
	require.Equal(t, 2*rollout.EstimateBackup+rollout.EstimateStage+rollout.EstimateHealth+rollout.EstimateStage+4*rollout.EstimateRestart, p.Expected)
}

type installsAtActivation struct{ rollout.Installer }

func (installsAtActivation) InstallsAtActivation() bool { return true }

// A run's journal reads, in status, as what the next run does with it: a
// prepare-phase one (a run stopped during its backups or health check)
// changed nothing live, and is started over, not finished.
func TestStatusJournalLine(t *testing.T) {
	for _, tc := range []struct {
		phase rollout.Phase
		want  string
	}{
		{rollout.PhasePrepare, "unfinished run: " + v1 + " -> " + v2 + ", phase prepare, step stage (nothing live changed: the next run starts over)"},
		{rollout.PhaseCanary, "unfinished run: " + v1 + " -> " + v2 + ", phase canary, step stage (the next run finishes it)"},
		{rollout.PhaseRollback, "unfinished run: " + v1 + " -> " + v2 + ", phase rollback, step stage (the next run finishes the rollback)"},
	} {
		t.Run(string(tc.phase), func(t *testing.T) {
			s := rollout.Status{Journal: &rollout.Journal{Previous: v1, Target: v2, Phase: tc.phase, Step: "stage"}}
			require.Contains(t, s.Lines(), tc.want)
		})
	}
}

func TestStatus(t *testing.T) {
	sim := newSim(t)
	sim.SetBusy("bob", true)
	e := sim.Engine(rollout.Options{})
	_, err := e.Run(context.Background())
	require.NoError(t, err)
	require.NoError(t, e.State().AddDeadEnd("0.0.27-nightly.20260601.1", "health check: boom"))
	_, err = e.SetFreeze("hold", "ops", 0)
	require.NoError(t, err)

	s, err := e.Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, v2, s.Current)
	require.Equal(t, v2, s.LastGood)
	require.NotNil(t, s.Freeze)
	require.Len(t, s.Markers, 1)
	require.Len(t, s.Instances, 4)
	for _, is := range s.Instances {
		want := v2
		if is.User == "bob" {
			want = v1
			require.Equal(t, v2, is.Deferred)
		}
		require.Equal(t, want, is.Version, is.User)
		require.NotNil(t, is.NewestBackup, is.User)
	}
	text := strings.Join(s.Lines(), "\n")
	for _, want := range []string{"FROZEN: hold by ops", "dead end 0.0.27-nightly.20260601.1: health check: boom", "deferred bob -> " + v2, "bob t3-serve@bob.service active version=" + v1} {
		require.Contains(t, text, want)
	}

	f, err := e.Unfreeze()
	require.NoError(t, err)
	require.Equal(t, "hold", f.Reason)
	s, err = e.Status(context.Background())
	require.NoError(t, err)
	require.Nil(t, s.Freeze)
}

// `updater status` shows a unit it cannot place with its error, beside the
// others, instead of failing whole on one bad line of the user map.
func TestStatusShowsAnUnplacedUnitBesideTheOthers(t *testing.T) {
	_, e, _ := drainOfBob(t, false)
	addUnplacedUnit(e)
	s, err := e.Status(context.Background())
	require.NoError(t, err)
	require.Len(t, s.Instances, 2)
	require.Equal(t, "bob", s.Instances[0].User)
	require.Empty(t, s.Instances[0].Err)
	require.Contains(t, s.Instances[1].Err, `OS user "Bad User"`)
}
