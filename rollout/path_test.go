package rollout_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

// An updater stopped while it checks the verification path (systemctl
// stop, a shutdown) has learnt nothing about the dispatch: no
// VERIFY-PATH BROKEN alert, which pages for a dispatch that is down, and
// nothing restarted on the way out.
func TestStoppedDuringThePathCheckAlertsNothing(t *testing.T) {
	stopDuringVerify := func(e *rollout.Engine, cancel context.CancelFunc) {
		e.Verifier = &rollouttest.Verifier{VerifyPairingFunc: func(ctx context.Context, user string) error {
			cancel() // the updater is told to stop while the dispatch answers
			<-ctx.Done()
			return fmt.Errorf("pairing %s through the dispatch: %w", user, ctx.Err())
		}}
	}
	for _, tc := range []struct {
		name string
		// do sets up a run of one command whose path check is stopped,
		// returns its error and the simulation.
		do func(t *testing.T) (*rollouttest.Sim, *recorder, error)
	}{
		{"run", func(t *testing.T) (*rollouttest.Sim, *recorder, error) {
			sim := newSim(t)
			rec := &recorder{}
			e := sim.Engine(rollout.Options{OnEvent: rec.on})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopDuringVerify(e, cancel)
			_, err := e.Run(ctx)
			return sim, rec, err
		}},
		{"migrate-idle", func(t *testing.T) (*rollouttest.Sim, *recorder, error) {
			f := newDrain(t, "bob")
			rec := &recorder{}
			f.e.OnEvent = rec.on
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopDuringVerify(f.e, cancel)
			_, err := f.e.MigrateIdle(ctx, rollout.DrainOptions{})
			return f.sim, rec, err
		}},
		{"watchdog", func(t *testing.T) (*rollouttest.Sim, *recorder, error) {
			f := newWD(t)
			rec := &recorder{}
			f.e.OnEvent = rec.on
			f.down["bob"] = errWedged
			f.tick(t)
			f.tick(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopDuringVerify(f.e, cancel)
			_, err := f.wd.Tick(ctx)
			return f.sim, rec, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, rec, err := tc.do(t)
			require.ErrorIs(t, err, rollout.ErrInterrupted)
			require.NotErrorIs(t, err, rollout.ErrPathBroken)
			require.NotContains(t, rec.kinds(), rollout.EventPathBroken, "no alert for a dispatch nobody found down")
			require.Contains(t, rec.kinds(), rollout.EventInterrupted)
			require.Empty(t, restarts(sim), "nothing restarted on the way out")
		})
	}
}
