package rollout

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// pathTries is how many running users checkPath tries: one user's own
// trouble on the current build is not the dispatch's.
const pathTries = 3

// DefaultPathCheckTimeout bounds checkPath's verification of one user (or
// VerifyTimeout, when shorter): the instance is already running, so nothing
// has to start first.
const DefaultPathCheckTimeout = 20 * time.Second

// checkPath verifies, before anything changes, that a user can pair through
// the dispatch on the current build, so that a canary failure afterwards is
// the new build's doing. Without it, a dispatch that is down would fail the
// first canary, and a good build would be rolled back, dead-ended and frozen
// out. The running users are tried in canary order, pathTries at most; with
// none running there is nothing to check against.
//
// A user with a deferral marker is never tried: that instance still runs an
// older build than current, and a dispatch that mints with the current
// build's CLI (the seed's t3-mint) would migrate its database under it.
//
// The argument then, put in the alert line, says what the caller does about
// a broken path.
func (e *Engine) checkPath(ctx context.Context, fleet []Member, current, then string) error {
	d := e.VerifyTimeout
	if d <= 0 || d > DefaultPathCheckTimeout {
		d = DefaultPathCheckTimeout
	}
	deferred, err := e.State().markersByUser()
	if err != nil {
		return err
	}
	var errs []string
	for _, m := range CanaryOrder(fleet, e.Order, e.OperatorUser, e.sizeFunc(nil)) {
		if _, ok := deferred[m.Unit.User]; ok {
			continue
		}
		us, err := e.Units.Status(ctx, m.Unit)
		if err != nil {
			return fmt.Errorf("status %s: %w", m.Unit.User, err)
		}
		if !us.Active {
			continue
		}
		t0 := e.now()
		vctx, cancel := context.WithTimeout(ctx, d)
		err = e.Verifier.VerifyPairing(vctx, m.SSOName())
		cancel()
		if err == nil {
			e.emit(ctx, Event{Kind: EventPathChecked, User: m.Unit.User, Unit: m.Unit.Name, Version: current, Took: e.now().Sub(t0),
				Reason: "paired through the dispatch on the current build"})
			return nil
		}
		errs = append(errs, m.Unit.User+": "+err.Error())
		if len(errs) == pathTries || ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil
	}
	if ctx.Err() != nil {
		// Told to stop mid-check: the failures are the stop's, not the
		// dispatch's, and VERIFY-PATH BROKEN pages someone.
		reason := fmt.Sprintf("stopped at the verification path check on the current build %s (%v); nothing changed, nobody is blamed",
			current, context.Cause(ctx))
		e.emit(ctx, Event{Kind: EventInterrupted, Version: current, Reason: reason, Err: ctx.Err()})
		return fmt.Errorf("%w: %s", ErrInterrupted, reason)
	}
	reason := fmt.Sprintf("no user pairs through the dispatch on the current build %s, so a verification could not tell a bad build from this; %s: %s",
		current, then, strings.Join(errs, "; "))
	e.emit(ctx, Event{Kind: EventPathBroken, Version: current, Reason: reason})
	return fmt.Errorf("%w: %s", ErrPathBroken, reason)
}
