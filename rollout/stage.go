package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// staging is an Installer.Stage running in its own goroutine.
type staging struct {
	cancel context.CancelFunc
	done   chan struct{}
	build  Build
	took   time.Duration
	err    error
}

// startStage stages version in the background; a failure is also passed
// to onFail, as "stage <version>: <err>". The goroutine touches only the
// installer: events and the journal stay with the caller.
func (e *Engine) startStage(ctx context.Context, version string, onFail func(error)) *staging {
	ctx, cancel := context.WithCancel(ctx)
	s := &staging{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t0 := e.now()
		s.build, s.err = e.Installer.Stage(ctx, version)
		s.took = e.now().Sub(t0)
		if s.err != nil {
			s.err = fmt.Errorf("stage %s: %w", version, s.err)
			onFail(s.err)
		}
	}()
	return s
}

// wait returns the staging's outcome once it has ended.
func (s *staging) wait() (Build, time.Duration, error) {
	<-s.done
	s.cancel()
	return s.build, s.took, s.err
}

// stop cancels the staging and waits for it, so nothing is left writing
// once the run has returned.
func (s *staging) stop() {
	s.cancel()
	<-s.done
}

func (e *Engine) stageAndCheck(ctx context.Context, j *Journal, stage *staging) (Result, error) {
	st := e.State()
	res := Result{Target: j.Target, Previous: j.Previous}
	j.Step = "stage"
	if err := st.WriteJournal(j); err != nil {
		stage.stop()
		return res, err
	}
	b, took, err := stage.wait()
	if err != nil {
		_ = st.RemoveJournal()
		return res, err
	}
	e.emit(ctx, Event{Kind: EventStaged, Version: j.Target, Reason: b.Dir, Took: took})
	if err := e.crash("stage"); err != nil {
		return res, err
	}
	seed, err := e.seedSnapshot(j.Snapshots)
	if err != nil {
		_ = st.RemoveJournal()
		return res, err
	}
	j.Step = "health"
	if err := st.WriteJournal(j); err != nil {
		return res, err
	}
	rep, err := e.checkBuild(ctx, b, seed)
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx) // stopped mid-check: whatever it reported is no verdict
	}
	if err != nil {
		// The check could not run (scratch space, the seed, the candidate's
		// install) or was interrupted: nothing says the build is bad, so it
		// is no dead end, and its stage stays for the next run. Nothing
		// changed, so there is nothing to finish either.
		_ = st.RemoveJournal()
		return res, fmt.Errorf("health check could not run (%s is not blamed): %w", j.Target, err)
	}
	if !rep.Passed {
		reason := rep.Reason
		if reason == "" {
			reason = "health check did not pass"
		}
		var errs []error
		errs = append(errs, st.AddDeadEnd(j.Target, "health check: "+reason))
		errs = append(errs, e.Installer.Drop(ctx, j.Target))
		errs = append(errs, st.RemoveJournal())
		e.emit(ctx, Event{Kind: EventHealthCheckFailed, Version: j.Target, Reason: reason, Took: rep.Took})
		res.Outcome, res.Reason = OutcomeHealthCheckFailed, reason
		return res, errors.Join(append([]error{fmt.Errorf("%w (%s)", ErrHealthCheckFailed, reason)}, errs...)...)
	}
	e.emit(ctx, Event{Kind: EventHealthChecked, Version: j.Target, Took: rep.Took,
		Reason: fmt.Sprintf("endpoint=%s cookie=%s schema=%d", rep.Endpoint, rep.Cookie, rep.Schema)})
	if err := e.crash("health"); err != nil {
		return res, err
	}
	return Result{}, nil
}

// checkBuild health-checks b; a build with no binary of its own (the global
// installer stages nothing before Activate) is checked as a candidate staged
// into a scratch directory by CandidateInstaller.
func (e *Engine) checkBuild(ctx context.Context, b Build, seed string) (HealthReport, error) {
	if b.Bin != "" || e.CandidateInstaller == nil {
		return e.check1(ctx, b, seed)
	}
	tmp := e.TmpDir
	if tmp == "" {
		tmp = DefaultTmpDir
	}
	dir, err := os.MkdirTemp(tmp, "t3-candidate-")
	if err != nil {
		return HealthReport{}, fmt.Errorf("health check scratch: %w", err)
	}
	defer os.RemoveAll(dir)
	cb, err := e.CandidateInstaller(dir).Stage(ctx, b.Version)
	if err != nil {
		return HealthReport{}, fmt.Errorf("stage candidate %s: %w", b.Version, err)
	}
	return e.check1(ctx, cb, seed)
}

func (e *Engine) check1(ctx context.Context, b Build, seed string) (HealthReport, error) {
	d := e.HealthTimeout
	if d <= 0 {
		d = DefaultHealthTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return e.Health.Check(cctx, b, seed)
}

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
func (e *Engine) checkPath(ctx context.Context, fleet []Member, current string) error {
	d := e.VerifyTimeout
	if d <= 0 || d > DefaultPathCheckTimeout {
		d = DefaultPathCheckTimeout
	}
	markers, err := e.State().Markers()
	if err != nil {
		return err
	}
	deferred := map[string]bool{}
	for _, mk := range markers {
		deferred[mk.User] = true
	}
	var errs []string
	for _, m := range CanaryOrder(fleet, e.Order, e.OperatorUser, e.sizeFunc(nil)) {
		if deferred[m.Unit.User] {
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
	reason := fmt.Sprintf("no user pairs through the dispatch on the current build %s, before any change (a canary could not tell a bad build from this): %s",
		current, strings.Join(errs, "; "))
	e.emit(ctx, Event{Kind: EventPathBroken, Version: current, Reason: reason})
	return fmt.Errorf("%w: %s", ErrPathBroken, reason)
}
