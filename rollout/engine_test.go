package rollout_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
	"github.com/t3fleet/t3fleet/statebackup"
)

const (
	v1 = "0.0.28-nightly.20260616.571"
	v2 = "0.0.28-nightly.20260617.580"
)

// newSim: alice (smallest db), bob, carol, zed (the operator), all on v1,
// nightly pointing at v2.
func newSim(t *testing.T) *rollouttest.Sim {
	t.Helper()
	sim, err := rollouttest.NewSim(t.TempDir(), v1, "alice", "bob", "carol", "zed")
	require.NoError(t, err)
	sim.Publish("nightly", v2, time.Now().Add(-24*time.Hour))
	return sim
}

type recorder struct{ events []rollout.Event }

func (r *recorder) on(ev rollout.Event) { r.events = append(r.events, ev) }
func (r *recorder) kinds() []rollout.EventKind {
	var out []rollout.EventKind
	for _, e := range r.events {
		out = append(out, e.Kind)
	}
	return out
}

func restarts(sim *rollouttest.Sim) []string {
	var out []string
	for _, c := range sim.Calls() {
		if u, ok := strings.CutPrefix(c, "restart "); ok {
			out = append(out, u)
		}
	}
	return out
}

func TestRunGoodRolloutDefersBusyUser(t *testing.T) {
	sim := newSim(t)
	sim.SetBusy("bob", true)
	rec := &recorder{}
	e := sim.Engine(rollout.Options{OperatorUser: "alice", OnEvent: rec.on})

	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeDone, res.Outcome, res.Line())
	require.Equal(t, 0, res.ExitCode())
	require.Equal(t, []string{"carol", "zed", "alice"}, res.Restarted, "smallest first, operator last")
	require.Equal(t, []string{"bob"}, res.Deferred)
	require.Equal(t, []string{"carol", "zed", "alice"}, restarts(sim))
	require.Equal(t, v2, sim.Current())

	st := e.State()
	lg, err := st.LastGood()
	require.NoError(t, err)
	require.Equal(t, v2, lg)
	m, err := st.Marker("bob")
	require.NoError(t, err)
	require.NotNil(t, m)
	require.Equal(t, v2, m.Target)
	j, err := st.Journal()
	require.NoError(t, err)
	require.Nil(t, j)
	require.Equal(t, v1, sim.User("bob").Version, "busy user untouched")
	for _, u := range []string{"alice", "carol", "zed"} {
		require.Equal(t, v2, sim.User(u).Version)
	}
	for _, k := range []rollout.EventKind{rollout.EventBackedUp, rollout.EventStaged, rollout.EventHealthChecked,
		rollout.EventActivated, rollout.EventDeferred, rollout.EventRestarted, rollout.EventVerified, rollout.EventDone} {
		require.Contains(t, rec.kinds(), k)
	}
	require.Contains(t, res.Line(), "restarted=3 deferred=1")

	// A second run has nothing to do.
	res, err = e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeRefused, res.Outcome)
}

func TestRunHealthCheckFailureRestartsNothing(t *testing.T) {
	sim := newSim(t)
	sim.FailHealth(v2, `Migration "31_AuthAuthorizationScopes" failed`)
	e := sim.Engine(rollout.Options{})

	res, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrHealthCheckFailed)
	require.Equal(t, rollout.OutcomeHealthCheckFailed, res.Outcome)
	require.Equal(t, 1, res.ExitCode())
	require.Contains(t, res.Line(), "HEALTH-CHECK FAILED (Migration")
	require.Empty(t, restarts(sim))
	require.Equal(t, v1, sim.Current())
	require.Contains(t, sim.Calls(), "drop "+v2)
	des, err := e.State().DeadEndVersions()
	require.NoError(t, err)
	require.Equal(t, []string{v2}, des)

	res, err = e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeRefused, res.Outcome)
	require.Contains(t, res.Reason, "dead end")
}

func TestRunCanaryFailureRollsBackAndFreezes(t *testing.T) {
	sim := newSim(t)
	sim.FailCanary(v2, "bob")
	rec := &recorder{}
	e := sim.Engine(rollout.Options{OnEvent: rec.on})
	before := map[string][]byte{}
	for _, u := range sim.Users() {
		b, err := os.ReadFile(sim.DBPath(u))
		require.NoError(t, err)
		before[u] = b
	}

	res, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrRolledBack)
	require.Equal(t, rollout.OutcomeRolledBack, res.Outcome)
	require.Equal(t, 1, res.ExitCode())
	require.Contains(t, rec.kinds(), rollout.EventRolledBack)
	require.Equal(t, v1, sim.Current(), "binary rolled back")
	require.Equal(t, []string{"alice", "bob"}, restarts(sim), "stopped at the first failure")
	for _, u := range sim.Users() {
		require.Equal(t, v1, sim.User(u).Version, u)
		b, err := os.ReadFile(sim.DBPath(u))
		require.NoError(t, err)
		require.Equal(t, before[u], b, "%s database byte-identical to its prebump snapshot", u)
	}
	fr, err := e.Freezer().Read()
	require.NoError(t, err)
	require.NotNil(t, fr)
	require.Contains(t, fr.Reason, "bob")
	des, err := e.State().DeadEndVersions()
	require.NoError(t, err)
	require.Equal(t, []string{v2}, des)

	res, err = e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeFrozen, res.Outcome)
	require.True(t, strings.HasPrefix(res.Line(), "FROZEN"))
}

func TestRunFreezeGate(t *testing.T) {
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		content string
		want    rollout.Outcome
	}{
		{"seed plain text", "bad nightly, investigating\n", rollout.OutcomeFrozen},
		{"empty file", "", rollout.OutcomeFrozen},
		{"structured", "reason: waiting for PR 8085\nwho: emil\nwhen: 2026-06-19T10:00:00Z\n", rollout.OutcomeFrozen},
		{"not yet expired", "reason: r\nuntil: 2026-06-21T00:00:00Z\n", rollout.OutcomeFrozen},
		{"expired", "reason: r\nuntil: 2026-06-20T11:00:00Z\n", rollout.OutcomeDone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := newSim(t)
			rec := &recorder{}
			e := sim.Engine(rollout.Options{Now: func() time.Time { return now }, OnEvent: rec.on})
			require.NoError(t, os.WriteFile(e.FreezeFile, []byte(c.content), 0o644))
			res, err := e.Run(context.Background())
			require.NoError(t, err)
			require.Equal(t, c.want, res.Outcome, res.Line())
			if c.want == rollout.OutcomeDone {
				require.Contains(t, rec.kinds(), rollout.EventFreezeExpired)
			} else {
				require.Empty(t, restarts(sim))
			}
		})
	}
}

func TestRunRefusals(t *testing.T) {
	cases := []struct {
		name    string
		publish string
		pin     string
		minAge  time.Duration
		want    rollout.Outcome
	}{
		{"dist-tag moved backward", "0.0.27-nightly.20260601.400", "", 0, rollout.OutcomeRefused},
		{"same", v1, "", 0, rollout.OutcomeRefused},
		{"stable on nightly", "0.0.29", "", 0, rollout.OutcomeRefused},
		{"too young", v2, "", 48 * time.Hour, rollout.OutcomeRefused},
		{"pin wins over channel", "0.0.27-nightly.20260601.400", v2, 0, rollout.OutcomeDone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := newSim(t)
			sim.Publish("nightly", c.publish, time.Now().Add(-time.Hour))
			e := sim.Engine(rollout.Options{Pin: c.pin, MinAge: c.minAge})
			res, err := e.Run(context.Background())
			require.NoError(t, err)
			require.Equal(t, c.want, res.Outcome, res.Line())
			require.Equal(t, 0, res.ExitCode())
			if c.want == rollout.OutcomeRefused {
				require.Empty(t, sim.Calls(), "a refusal touches nothing")
			}
		})
	}
}

func TestRunMissingBackup(t *testing.T) {
	for _, allow := range []bool{false, true} {
		sim := newSim(t)
		require.NoError(t, sim.AddUser("newbie", &rollouttest.SimUser{Running: true, Version: v1}))
		e := sim.Engine(rollout.Options{AllowMissingBackup: allow})
		res, err := e.Run(context.Background())
		if allow {
			require.NoError(t, err)
			require.Equal(t, rollout.OutcomeDone, res.Outcome)
			continue
		}
		require.Error(t, err)
		require.Equal(t, 1, res.ExitCode())
		require.Equal(t, v1, sim.Current())
		require.Empty(t, restarts(sim))
		j, jerr := e.State().Journal()
		require.NoError(t, jerr)
		require.Nil(t, j)
	}
}

func TestRunLockContention(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{})
	held, err := e.Lock(context.Background(), "watchdog")
	require.NoError(t, err)
	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeLocked, res.Outcome)
	require.Equal(t, 0, res.ExitCode())
	require.Contains(t, res.Reason, "command=watchdog")
	require.Empty(t, sim.Calls())

	// A bounded wait succeeds once the holder lets go: the holder finishes
	// only after the run has said it waits.
	e.LockWait = 10 * time.Second
	waited := ""
	e.OnEvent = func(ev rollout.Event) {
		if ev.Kind == rollout.EventLockWait {
			waited = ev.Reason
			require.NoError(t, held.Release())
		}
	}
	res, err = e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeDone, res.Outcome)
	require.Contains(t, waited, "command=watchdog")
}

func TestRunMalformedJournalLosesNothing(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{})
	p := filepath.Join(e.StateDir, rollout.JournalFile)
	require.NoError(t, os.MkdirAll(e.StateDir, 0o755))
	require.NoError(t, os.WriteFile(p, []byte("{not json"), 0o644))
	_, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrMalformed)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "{not json", string(b))
	require.Empty(t, sim.Calls())
}

// crashSteps runs a scenario once and returns every step name it passes.
func crashSteps(t *testing.T, setup func(*rollouttest.Sim)) []string {
	sim := newSim(t)
	setup(sim)
	var steps []string
	e := sim.Engine(rollout.Options{CrashAfter: func(s string) bool { steps = append(steps, s); return false }})
	_, _ = e.Run(context.Background())
	return steps
}

func TestRunConvergesAfterCrashAtEachStep(t *testing.T) {
	scenarios := []struct {
		name      string
		setup     func(*rollouttest.Sim)
		wantFinal string // the version everyone ends on
		frozen    bool
	}{
		{"good rollout", func(*rollouttest.Sim) {}, v2, false},
		{"canary failure", func(s *rollouttest.Sim) { s.FailCanary(v2, "carol") }, v1, true},
	}
	for _, sc := range scenarios {
		steps := crashSteps(t, sc.setup)
		require.NotEmpty(t, steps)
		for _, step := range steps {
			t.Run(sc.name+"/"+step, func(t *testing.T) {
				sim := newSim(t)
				sc.setup(sim)
				crashed := false
				e := sim.Engine(rollout.Options{CrashAfter: func(s string) bool {
					if s == step && !crashed {
						crashed = true
						return true
					}
					return false
				}})
				_, err := e.Run(context.Background())
				require.ErrorIs(t, err, rollout.ErrCrashed)

				e.CrashAfter = nil
				res, _ := e.Run(context.Background())
				require.NotEqual(t, rollout.OutcomeFailed, res.Outcome, res.Line())
				st := e.State()
				j, err := st.Journal()
				require.NoError(t, err)
				require.Nil(t, j, "journal finished")
				require.Equal(t, sc.wantFinal, sim.Current())
				for _, u := range sim.Users() {
					require.Equal(t, sc.wantFinal, sim.User(u).Version, "%s runs the fleet's version", u)
					require.True(t, sim.User(u).Running, u)
					schema, err := sim.DBSchema(u)
					require.NoError(t, err)
					require.Equal(t, sc.wantFinal, schema, "%s database matches its build", u)
				}
				lg, err := st.LastGood()
				require.NoError(t, err)
				if sc.wantFinal == v2 {
					require.Equal(t, v2, lg)
				}
				fr, err := e.Freezer().Read()
				require.NoError(t, err)
				require.Equal(t, sc.frozen, fr != nil)
			})
		}
	}
}

func TestCanaryOrder(t *testing.T) {
	sizes := map[string]int64{"a": 300, "b": 100, "c": 200, "op": 50}
	var fleet []rollout.Member
	for _, u := range []string{"a", "b", "c", "op"} {
		fleet = append(fleet, rollout.Member{Unit: rollout.Unit{User: u}})
	}
	names := func(ms []rollout.Member) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Unit.User)
		}
		return out
	}
	size := func(m rollout.Member) int64 { return sizes[m.Unit.User] }
	cases := []struct {
		order    []string
		operator string
		want     []string
	}{
		{nil, "", []string{"op", "b", "c", "a"}},
		{nil, "op", []string{"b", "c", "a", "op"}},
		{[]string{"a"}, "op", []string{"a", "b", "c", "op"}},
		{[]string{"c", "op"}, "op", []string{"c", "op", "b", "a"}},
	}
	for _, c := range cases {
		require.Equal(t, c.want, names(rollout.CanaryOrder(fleet, c.order, c.operator, size)), "%v %s", c.order, c.operator)
	}
}

// Everyone busy: the target is active but unproven, so last-good stays and a
// failed drain later has a proven build to go back to.
func TestRunAllDeferredLeavesLastGood(t *testing.T) {
	sim := newSim(t)
	for _, u := range sim.Users() {
		sim.SetBusy(u, true)
	}
	e := sim.Engine(rollout.Options{})
	require.NoError(t, e.State().SetLastGood(v1))
	res, err := e.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, rollout.OutcomeDone, res.Outcome)
	require.True(t, res.Unproven)
	require.Contains(t, res.Line(), "last-good unchanged")
	require.Equal(t, v2, sim.Current())
	lg, err := e.State().LastGood()
	require.NoError(t, err)
	require.Equal(t, v1, lg)
	ms, err := e.State().Markers()
	require.NoError(t, err)
	require.Len(t, ms, 4)
}

// Every nightly bump snapshots every user: a run that finishes prunes what
// it backed up to BackupKeep per kind (the newest prebump always stays), or
// the backup disk fills within weeks; -1 keeps everything.
func TestRunPrunesTheSnapshotsItTook(t *testing.T) {
	for _, tc := range []struct {
		keep   int
		pruned bool
	}{{0, true}, {3, true}, {-1, false}} {
		t.Run(fmt.Sprint(tc.keep), func(t *testing.T) {
			sim := newSim(t)
			e := sim.Engine(rollout.Options{BackupKeep: tc.keep})
			var pruned []string
			b := e.Backups.(*rollouttest.Backuper)
			b.PruneFunc = func(_ context.Context, tg statebackup.Target, keep int) error {
				pruned = append(pruned, fmt.Sprintf("%s/%d", tg.User, keep))
				return nil
			}
			res, err := e.Run(context.Background())
			require.NoError(t, err)
			require.Equal(t, rollout.OutcomeDone, res.Outcome)
			if !tc.pruned {
				require.Empty(t, pruned)
				return
			}
			want := []string{}
			for _, u := range []string{"alice", "bob", "carol", "zed"} {
				want = append(want, fmt.Sprintf("%s/%d", u, tc.keep))
			}
			require.Equal(t, want, pruned)
		})
	}
}

// rollbackFailedRun runs a fleet whose canary bob fails and whose unit bob
// then fails to start again: ROLLBACK FAILED.
func rollbackFailedRun(t *testing.T) (*rollout.Engine, rollout.Result) {
	t.Helper()
	sim := newSim(t)
	sim.FailCanary(v2, "bob")
	e := sim.Engine(rollout.Options{})
	um := e.Units.(*rollouttest.UnitManager)
	start := um.StartFunc
	um.StartFunc = func(ctx context.Context, u rollout.Unit) error {
		if u.User == "bob" {
			return fmt.Errorf("start job failed")
		}
		return start(ctx, u)
	}
	res, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrRollbackFailed)
	require.Equal(t, rollout.OutcomeRollbackFailed, res.Outcome)
	return e, res
}

// The summary line is what the operator reads first: its alert prefix once,
// then what happened (a doubled "ROLLBACK FAILED: ROLLBACK FAILED:" reads as
// two failures).
func TestRunRollbackFailedLineNamesItOnce(t *testing.T) {
	_, res := rollbackFailedRun(t)
	line := res.Line()
	require.True(t, strings.HasPrefix(line, "ROLLBACK FAILED: canary bob failed"), line)
	require.Equal(t, 1, strings.Count(line, "ROLLBACK FAILED"), line)
	require.Contains(t, line, "start bob: start job failed")
}

// The morning after, `updater status` is what the operator reads: its
// freeze must not look like a clean rollback's, or they unfreeze and run
// with bob still down.
func TestRunRollbackFailedShowsInTheFreeze(t *testing.T) {
	e, _ := rollbackFailedRun(t)
	s, err := e.Status(context.Background())
	require.NoError(t, err)
	require.NotNil(t, s.Freeze)
	require.Contains(t, s.Freeze.Reason, "canary bob failed")
	require.Contains(t, s.Freeze.Reason, "the rollback failed: start bob: start job failed")
	require.NotContains(t, s.Freeze.Reason, "ROLLBACK FAILED", "the nightly FROZEN line is no second alert")
}

// failBackupOf makes e's fake backups fail with err for the targets fail
// picks; the others are taken as before.
func failBackupOf(e *rollout.Engine, fail func(statebackup.Target) bool, err error) {
	b := e.Backups.(*rollouttest.Backuper)
	backup := b.BackupFunc
	b.BackupFunc = func(ctx context.Context, tg statebackup.Target, label string) (statebackup.Snapshot, error) {
		if fail(tg) {
			return statebackup.Snapshot{}, err
		}
		return backup(ctx, tg, label)
	}
}

// addUnplacedUnit lists, beside e's units, one the engine cannot place
// (its user is no valid OS user: a bad line of the user map).
func addUnplacedUnit(e *rollout.Engine) {
	um := e.Units.(*rollouttest.UnitManager)
	units := um.UnitsFunc
	um.UnitsFunc = func(ctx context.Context) ([]rollout.Unit, error) {
		us, err := units(ctx)
		return append(us, rollout.Unit{Name: "t3-serve@Bad User.service", User: "Bad User"}), err
	}
}

// crashedAfterAlicesRestart runs a bump that crashes right after alice's
// restart onto v2, and returns the fleet and the engine, its crash hook
// still set, as the next run finds them.
func crashedAfterAlicesRestart(t *testing.T) (*rollouttest.Sim, *rollout.Engine) {
	t.Helper()
	sim := newSim(t)
	e := sim.Engine(rollout.Options{CrashAfter: func(s string) bool { return s == "restart:alice" }})
	_, err := e.Run(context.Background())
	require.ErrorIs(t, err, rollout.ErrCrashed)
	require.Equal(t, v2, sim.User("alice").Version, "the crash came after alice's restart")
	return sim, e
}
