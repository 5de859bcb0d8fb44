package idlegate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/idlegate"
)

// oracleFunc is a func-field fake IdleOracle.
type oracleFunc func(ctx context.Context, in t3fleet.Instance) (idlegate.Verdict, error)

func (f oracleFunc) Idle(ctx context.Context, in t3fleet.Instance) (idlegate.Verdict, error) {
	return f(ctx, in)
}

func says(v idlegate.Verdict, err error) idlegate.IdleOracle {
	return oracleFunc(func(context.Context, t3fleet.Instance) (idlegate.Verdict, error) { return v, err })
}

func TestAll(t *testing.T) {
	idle := idlegate.Verdict{Idle: true, Reason: "idle: quiet for 1h", QuietFor: time.Hour}
	busy := idlegate.Verdict{Reason: "2 turn(s) in flight", ActiveTurns: 2, QuietFor: time.Minute}
	stuck := idlegate.Verdict{Reason: "1 turn(s) in flight; suspicious", ActiveTurns: 1, Suspicious: true}
	boom := errors.New("boom")
	cases := []struct {
		name       string
		oracles    []idlegate.IdleOracle
		idle       bool
		active     int
		suspicious bool
		quiet      time.Duration
		err        error
	}{
		{"none is not idle", nil, false, 0, false, 0, nil},
		{"one idle", []idlegate.IdleOracle{says(idle, nil)}, true, 0, false, time.Hour, nil},
		{"all idle", []idlegate.IdleOracle{says(idle, nil), says(idle, nil)}, true, 0, false, time.Hour, nil},
		{"one busy", []idlegate.IdleOracle{says(idle, nil), says(busy, nil)}, false, 2, false, time.Minute, nil},
		{"suspicious carries", []idlegate.IdleOracle{says(stuck, nil), says(idle, nil)}, false, 1, true, time.Hour, nil},
		{"an oracle without a quiet time does not zero it", []idlegate.IdleOracle{says(idlegate.Verdict{Idle: true, Reason: "idle: no agents"}, nil), says(idle, nil)}, true, 0, false, time.Hour, nil},
		{"an error is not idle even if it says idle", []idlegate.IdleOracle{says(idle, nil), says(idle, boom)}, false, 0, false, time.Hour, boom},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := idlegate.All(c.oracles...).Idle(bg, t3fleet.Instance{OSUser: "emil"})
			assert.Equal(t, c.idle, v.Idle)
			assert.Equal(t, c.active, v.ActiveTurns)
			assert.Equal(t, c.suspicious, v.Suspicious)
			assert.Equal(t, c.quiet, v.QuietFor)
			assert.NotEmpty(t, v.Reason)
			if c.err != nil {
				assert.ErrorIs(t, err, c.err)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}
