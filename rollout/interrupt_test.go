package rollout_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

// A run stopped while it asks whether a user is idle learns nothing of the
// user: it stops as interrupted, and the user is neither deferred (no
// marker for the drain) nor moved.
func TestStoppedDuringTheIdleCheckDefersNobody(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idle := e.Idle
	e.Idle = &rollouttest.IdleOracle{IdleFunc: func(ictx context.Context, in t3fleet.Instance) (idlegate.Verdict, error) {
		if in.User == "bob" {
			cancel() // systemctl stop, while bob's database is read
			return idlegate.Verdict{}, ictx.Err()
		}
		return idle.Idle(ictx, in)
	}}

	res, err := e.Run(ctx)
	require.ErrorIs(t, err, rollout.ErrInterrupted)
	require.Equal(t, rollout.OutcomeInterrupted, res.Outcome, res.Line())
	require.NotContains(t, res.Deferred, "bob")
	m, err := e.State().Marker("bob")
	require.NoError(t, err)
	require.Nil(t, m, "no deferral marker for a user nobody judged")
	require.Equal(t, 0, sim.User("bob").Restarts)
}
