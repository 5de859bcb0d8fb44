package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
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
		return res, err // the caller stops the staging
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
	// A checker run as root runs the build as another user (the seed's
	// owner), who must reach it, as every user reaches the shared prefix.
	if err := os.Chmod(dir, 0o755); err != nil {
		return HealthReport{}, fmt.Errorf("health check scratch: %w", err)
	}
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
	rep, err := e.Health.Check(cctx, b, seed)
	if err == nil && !rep.Passed && cctx.Err() != nil {
		// This bound is the engine's, over the whole check (a large seed's
		// copy counts against it); the checker's own bounds on the serve's
		// readiness, the mint and each request are what judge a build.
		err = fmt.Errorf("the check's %s ran out before a verdict (%s)", d, rep.Reason)
	}
	return rep, err
}
