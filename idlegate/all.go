package idlegate

import (
	"context"
	"errors"
	"strings"

	"github.com/t3fleet/t3fleet"
)

// All combines oracles: the instance is idle only if every oracle says
// idle. Every oracle is asked (so the verdict's Reason lists them all);
// ActiveTurns is the largest, QuietFor the shortest an oracle reported
// (zero from an oracle that cannot tell is ignored), Suspicious any. With no
// oracles the verdict is not idle.
func All(oracles ...IdleOracle) IdleOracle { return all(oracles) }

type all []IdleOracle

func (a all) Idle(ctx context.Context, in t3fleet.Instance) (Verdict, error) {
	if len(a) == 0 {
		return Verdict{Reason: "not idle: no idle oracle configured"}, nil
	}
	out := Verdict{Idle: true}
	var reasons []string
	var errs []error
	for _, o := range a {
		v, err := o.Idle(ctx, in)
		if err != nil {
			v.Idle = false
			errs = append(errs, err)
			if v.Reason == "" {
				v.Reason = "not idle: " + err.Error()
			}
		}
		out.Idle = out.Idle && v.Idle
		out.ActiveTurns = max(out.ActiveTurns, v.ActiveTurns)
		out.Suspicious = out.Suspicious || v.Suspicious
		if v.QuietFor > 0 && (out.QuietFor == 0 || v.QuietFor < out.QuietFor) {
			out.QuietFor = v.QuietFor
		}
		reasons = append(reasons, v.Reason)
	}
	out.Reason = strings.Join(reasons, "; ")
	return out, errors.Join(errs...)
}
