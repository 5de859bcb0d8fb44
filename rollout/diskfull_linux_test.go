package rollout_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/internal/realtest"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

// fillOnFailedVerify makes the disk of the engine's state directory fill
// up while a verification fails: the journal write that records the
// rollback is the first to meet it.
func fillOnFailedVerify(t *testing.T, e *rollout.Engine) {
	v := e.Verifier.(*rollouttest.Verifier)
	verify := v.VerifyPairingFunc
	filled := false
	v.VerifyPairingFunc = func(ctx context.Context, user string) error {
		err := verify(ctx, user)
		if err != nil && !filled {
			realtest.FillTo(t, e.StateDir, 0)
			filled = true
		}
		return err
	}
}

// A canary (or a drain's restart) fails its verification on a build that
// breaks pairing, and the state directory's disk is full by then: the
// journal cannot record the rollback. The rollback is run all the same
// (the freeze file, elsewhere, stops the next runs), the user is back on
// the previous build and their own data, and the error names the full
// disk. It used to stop right there: the user left
// on the bad build over a migrated database, the bad build active, no
// freeze, and the run reported as "failed" before any change.
func TestFailedVerificationOnAFullStateDiskStillRollsBack(t *testing.T) {
	cases := []struct {
		name string
		// setup returns the engine (state directory on a small tmpfs), the
		// user whose verification fails, and the build they must be back on.
		setup func(t *testing.T) (*rollouttest.Sim, *rollout.Engine, string, string)
		run   func(e *rollout.Engine) (string, error)
		// want: the run's rollback also dead-ends the build, in the full
		// state directory; the drain's does not.
		want error
	}{
		{
			name: "run's canary",
			setup: func(t *testing.T) (*rollouttest.Sim, *rollout.Engine, string, string) {
				sim := newSim(t)
				sim.FailCanary(v2, "alice")
				return sim, sim.Engine(rollout.Options{StateDir: realtest.Tmpfs(t, 256<<10)}), "alice", v1
			},
			run: func(e *rollout.Engine) (string, error) {
				res, err := e.Run(context.Background())
				return res.Line(), err
			},
			want: rollout.ErrRollbackFailed,
		},
		{
			name: "drain's restart",
			setup: func(t *testing.T) (*rollouttest.Sim, *rollout.Engine, string, string) {
				sim, e, _ := drainOfBob(t, true)
				sim.FailCanary(drainNew, "bob")
				dir := realtest.Tmpfs(t, 256<<10)
				require.NoError(t, os.CopyFS(dir, os.DirFS(e.StateDir)))
				e.StateDir = dir
				return sim, e, "bob", drainOld
			},
			run: func(e *rollout.Engine) (string, error) {
				res, err := e.MigrateIdle(context.Background(), rollout.DrainOptions{})
				return res.Line(), err
			},
			want: rollout.ErrRolledBack,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim, e, user, back := tc.setup(t)
			fillOnFailedVerify(t, e)

			line, err := tc.run(e)
			require.ErrorIs(t, err, tc.want, line)
			require.ErrorIs(t, err, syscall.ENOSPC, line)
			require.Equal(t, back, sim.Current(), "the bad build stays active; calls: %v", sim.Calls())
			require.Equal(t, back, sim.User(user).Version, "%s left on the bad build", user)
			schema, err := sim.DBSchema(user)
			require.NoError(t, err)
			require.Equal(t, back, schema, "%s left on a migrated database", user)
			require.NoError(t, e.Verifier.VerifyPairing(context.Background(), user))
			fr, err := e.Freezer().Read()
			require.NoError(t, err)
			require.NotNil(t, fr, "nothing stops the next run")
		})
	}
}

// Every state file written on a full disk: the write fails naming the
// file, the good one stays as it was, and no temp file is left.
func TestStateFilesOnAFullDiskKeepTheLastGood(t *testing.T) {
	dir := realtest.Tmpfs(t, 256<<10)
	st := rollout.State{Dir: dir}
	ff := rollout.FreezeFile{Path: filepath.Join(dir, "t3-autoupdate.freeze")}
	j := &rollout.Journal{Target: v1, Phase: rollout.PhasePrepare}
	cases := []struct {
		file  string
		write func(v string) error
	}{
		{rollout.LastGoodFile, func(v string) error { return st.SetLastGood(v) }},
		{rollout.DeadEndsFile, func(v string) error { return st.AddDeadEnd(v, "bad") }},
		{filepath.Join(rollout.DeferredDir, "alice"), func(v string) error { return st.Defer("alice", v) }},
		{rollout.JournalFile, func(v string) error { j.Target = v; return st.WriteJournal(j) }},
		{"t3-autoupdate.freeze", func(v string) error { return ff.Write(rollout.Freeze{Reason: v}) }},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			require.NoError(t, tc.write(v1))
			p := filepath.Join(dir, tc.file)
			before, err := os.ReadFile(p)
			require.NoError(t, err)
			filler := realtest.FillTo(t, dir, 0)
			defer os.Remove(filler)

			err = tc.write(v2)
			require.ErrorIs(t, err, syscall.ENOSPC)
			require.Contains(t, err.Error(), p)
			after, err := os.ReadFile(p)
			require.NoError(t, err)
			require.Equal(t, string(before), string(after))
			tmps, err := filepath.Glob(filepath.Join(filepath.Dir(p), ".*.tmp*"))
			require.NoError(t, err)
			require.Empty(t, tmps)
		})
	}
}
