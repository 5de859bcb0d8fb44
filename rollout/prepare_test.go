package rollout_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
	"github.com/t3fleet/t3fleet/statebackup"
)

// The target is staged while the backups are taken; a failure of either
// stops the run before anything live changes, and the other one stops too.
func TestRunStagesWhileBackingUp(t *testing.T) {
	errStage := errors.New("npm: 404 no such version")
	errBackup := errors.New("disk full")
	cases := []struct {
		name string
		// stage and backup wrap the sim's; enter marks that Stage began, and
		// entered is closed then.
		stage  func(ctx context.Context, enter func()) error
		backup func(ctx context.Context, user string, entered <-chan struct{}) error
		// want: "" for a done run, else a text of the run's error.
		want string
		// maxBackups bounds how many backups the run may take.
		maxBackups int
	}{
		{
			name: "overlapped",
			stage: func(ctx context.Context, enter func()) error {
				enter()
				return nil
			},
			// The last backup waits for the staging to have begun: a run
			// that stages only after its backups would stall here.
			backup: func(ctx context.Context, user string, entered <-chan struct{}) error {
				if user != "zed" {
					return nil
				}
				select {
				case <-entered:
					return nil
				case <-time.After(10 * time.Second):
					return errors.New("staging did not start while the backups ran")
				}
			},
			maxBackups: 4,
		},
		{
			name: "stage fails: backups stop early",
			stage: func(ctx context.Context, enter func()) error {
				enter()
				return errStage
			},
			// The second backup would never end on its own: the failed
			// staging must stop it. Two run at once and alice's ends at
			// once, so carol may start before the failure lands; zed never.
			backup: func(ctx context.Context, user string, entered <-chan struct{}) error {
				if user == "alice" {
					return nil
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Second):
					return errors.New("a failed staging did not stop the backups")
				}
			},
			want:       "stage " + v2 + ": " + errStage.Error(),
			maxBackups: 3,
		},
		{
			name: "backup fails: staging is cancelled",
			stage: func(ctx context.Context, enter func()) error {
				enter()
				<-ctx.Done() // an install that would never end on its own
				return ctx.Err()
			},
			backup: func(ctx context.Context, user string, entered <-chan struct{}) error {
				<-entered
				if user == "bob" {
					return errBackup
				}
				return nil
			},
			want:       errBackup.Error(),
			maxBackups: 4,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := newSim(t)
			e := sim.Engine(rollout.Options{})
			entered := make(chan struct{})
			enter := sync.OnceFunc(func() { close(entered) }) // Activate stages again
			inner := sim.Installer()
			e.Installer = &rollouttest.Installer{
				CurrentFunc: inner.CurrentFunc,
				StageFunc: func(ctx context.Context, v string) (rollout.Build, error) {
					if err := c.stage(ctx, enter); err != nil {
						return rollout.Build{}, err
					}
					return inner.StageFunc(ctx, v)
				},
				ActivateFunc: inner.ActivateFunc,
				DropFunc:     inner.DropFunc,
			}
			innerB := sim.Backuper()
			var backups atomic.Int32
			e.Backups = &rollouttest.Backuper{
				BackupFunc: func(ctx context.Context, tg statebackup.Target, label string) (statebackup.Snapshot, error) {
					backups.Add(1)
					if err := c.backup(ctx, tg.User, entered); err != nil {
						return statebackup.Snapshot{}, err
					}
					return innerB.BackupFunc(ctx, tg, label)
				},
				RestoreFunc: innerB.RestoreFunc,
				ListFunc:    innerB.ListFunc,
			}
			res, err := e.Run(context.Background())
			require.LessOrEqual(t, int(backups.Load()), c.maxBackups)
			if c.want == "" {
				require.NoError(t, err)
				require.Equal(t, rollout.OutcomeDone, res.Outcome)
				require.Equal(t, v2, sim.Current())
				return
			}
			require.ErrorContains(t, err, c.want)
			require.Equal(t, 1, res.ExitCode())
			require.Equal(t, v1, sim.Current(), "nothing activated")
			require.Empty(t, restarts(sim))
			j, jerr := e.State().Journal()
			require.NoError(t, jerr)
			require.Nil(t, j, "the journal goes with a run that changed nothing")
		})
	}
}

// The prebump snapshots are taken BackupConcurrency at a time (each mostly
// waits on fsyncs), never more; the first failure stops the ones in flight,
// and a failed run leaves no backup running behind it.
func TestRunBacksUpConcurrently(t *testing.T) {
	errBackup := errors.New("disk full")
	cases := []struct {
		name        string
		concurrency int
		failBob     bool
		wantMax     int32
	}{
		{"default: two at once", 0, false, 2},
		{"one by one", 1, false, 1},
		{"three at once", 3, false, 3},
		{"a failure stops the others", 2, true, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := newSim(t) // alice, bob, carol, zed
			e := sim.Engine(rollout.Options{BackupConcurrency: c.concurrency})
			inner := sim.Backuper()
			var mu sync.Mutex
			var inFlight, peak, started int32 // under mu
			holding := func() bool {
				mu.Lock()
				defer mu.Unlock()
				return inFlight < c.wantMax && started < 4
			}
			e.Backups = &rollouttest.Backuper{
				BackupFunc: func(ctx context.Context, tg statebackup.Target, label string) (statebackup.Snapshot, error) {
					mu.Lock()
					inFlight, started = inFlight+1, started+1
					peak = max(peak, inFlight)
					mu.Unlock()
					defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
					// Each backup holds its slot until as many as allowed
					// have started (or, at the end, no more will), so a run
					// that takes them one by one would never reach the peak.
					deadline := time.Now().Add(5 * time.Second)
					for holding() && time.Now().Before(deadline) {
						if ctx.Err() != nil {
							break
						}
						time.Sleep(time.Millisecond)
					}
					if c.failBob && tg.User == "bob" {
						return statebackup.Snapshot{}, errBackup
					}
					if c.failBob { // the others wait to be stopped
						<-ctx.Done()
						return statebackup.Snapshot{}, ctx.Err()
					}
					return inner.BackupFunc(ctx, tg, label)
				},
				RestoreFunc: inner.RestoreFunc,
				ListFunc:    inner.ListFunc,
			}
			res, err := e.Run(context.Background())
			mu.Lock()
			defer mu.Unlock()
			require.Zero(t, inFlight, "no backup still runs once Run has returned")
			require.Equal(t, c.wantMax, peak, "backups in flight at once")
			if c.failBob {
				require.ErrorIs(t, err, errBackup)
				require.Equal(t, v1, sim.Current(), "nothing activated")
				return
			}
			require.NoError(t, err)
			require.Equal(t, rollout.OutcomeDone, res.Outcome, res.Line())
			for _, u := range sim.Users() {
				require.Equal(t, v2, sim.User(u).Version, u)
			}
		})
	}
}
