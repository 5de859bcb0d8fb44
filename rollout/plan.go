package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/statebackup"
)

// Rough costs Plan uses for its expected duration.
const (
	EstimateBackup  = 2 * time.Second
	EstimateStage   = 20 * time.Second
	EstimateHealth  = 15 * time.Second
	EstimateRestart = 10 * time.Second // restart + first successful verification
)

// expectedPrepare estimates the backups of n users, BackupConcurrency at
// a time, with the staging running alongside: the longer of the two. An
// installer that installs only at activation stages nothing then; its
// health check's scratch stage comes after the backups, and its install at
// activation after the health check.
func (e *Engine) expectedPrepare(n int) time.Duration {
	c := e.BackupConcurrency
	if c <= 0 {
		c = DefaultBackupConcurrency
	}
	backups := time.Duration((n+c-1)/c) * EstimateBackup
	if ai, ok := e.Installer.(ActivationInstaller); ok && ai.InstallsAtActivation() {
		return backups + EstimateStage + EstimateStage
	}
	return max(backups, EstimateStage)
}

// PlanOptions tune Plan.
type PlanOptions struct {
	// CheckCandidate stages the target into a temp dir (Options.TmpDir,
	// through Options.CandidateInstaller) and health-checks it there.
	CheckCandidate bool
}

// PlanUser is what a run would do with one instance.
type PlanUser struct {
	User    string
	Unit    string
	Running bool
	DBSize  int64
	Backup  string // what the run would back up, or why it would stop
	Action  string // "restart", "defer", "skip"
	Why     string
}

// Plan is what Run would do now, computed without changing anything.
type Plan struct {
	Current  string
	LastGood string
	Channel  string
	Pinned   bool
	Target   string
	Why      string // how the target was chosen
	Go       bool   // a run would roll out Target
	Refusal  string // why not, when a gate says no
	Freeze   *Freeze
	Expired  bool     // Freeze has expired and would be ignored
	Journal  *Journal // an unfinished run a real run would finish first
	Seed     string   // the user whose snapshot feeds the health check
	// PathUsers are who a run would try, in turn, to pair through the
	// dispatch on the current build before any change (plan tries none).
	PathUsers []string
	Users     []PlanUser
	Candidate *HealthReport // with CheckCandidate
	Expected  time.Duration
	// PathCheckSkipped: the run would not check the path (SkipPathCheck).
	PathCheckSkipped bool
}

// Plan computes what Run would do: touching no state, taking no lock, and
// (unless CheckCandidate) staging nothing.
func (e *Engine) Plan(ctx context.Context, o PlanOptions) (Plan, error) {
	st := e.State()
	p := Plan{Channel: e.track(), Pinned: e.Pin != "", PathCheckSkipped: e.SkipPathCheck}
	var err error
	if p.LastGood, err = st.LastGood(); err != nil {
		return p, err
	}
	if p.Journal, err = st.Journal(); err != nil {
		return p, err
	}
	if p.Freeze, err = e.Freezer().Read(); err != nil {
		return p, err
	}
	p.Expired = p.Freeze != nil && p.Freeze.Expired(e.now())
	if e.Installer == nil || e.Units == nil {
		return p, fmt.Errorf("%w: Installer and Units", ErrMissingDependency)
	}
	current, rel, pinned, err := e.resolve(ctx)
	if err != nil {
		return p, err
	}
	p.Current, p.Target = current, rel.Version
	if pinned {
		p.Why = "pinned to " + rel.Version
	} else {
		p.Why = fmt.Sprintf("channel %s points at %s", p.Channel, rel.Version)
		if !rel.Published.IsZero() {
			p.Why += fmt.Sprintf(" (published %s, %s ago)", rel.Published.UTC().Format(time.RFC3339), e.now().Sub(rel.Published).Truncate(time.Minute))
		}
	}
	gerr := e.gate(current, rel, pinned)
	var re *RefusedError
	switch {
	case errors.As(gerr, &re):
		p.Refusal = re.Reason
	case gerr != nil:
		return p, gerr
	}
	p.Go = gerr == nil && (p.Freeze == nil || p.Expired) && p.Journal == nil

	fleet, err := e.Fleet(ctx)
	if err != nil {
		return p, err
	}
	sizes := map[string]int64{}
	for _, m := range fleet {
		sizes[m.Unit.User] = LiveDBSize(m.Instance)
	}
	ordered := CanaryOrder(fleet, e.Order, e.OperatorUser, func(m Member) int64 { return sizes[m.Unit.User] })
	deferred, err := st.markersByUser()
	if err != nil {
		return p, err
	}
	restarts := 0
	var largest int64 = -1
	for _, m := range ordered {
		pu := PlanUser{User: m.Unit.User, Unit: m.Unit.Name, DBSize: sizes[m.Unit.User]}
		switch {
		case HasDatabase(m.Instance):
			pu.Backup = PrebumpLabelPrefix + p.Target
		case m.Instance.StateDir == "":
			pu.Backup = PrebumpLabelPrefix + p.Target + " (database not on this host)"
		case e.AllowMissingBackup:
			pu.Backup = "none: no database yet (allowed)"
		default:
			pu.Backup = "MISSING: no database; the run would stop (see --allow-missing-backup)"
		}
		if e.SeedUser == "" && HasDatabase(m.Instance) && pu.DBSize > largest {
			p.Seed, largest = m.Unit.User, pu.DBSize
		}
		us, err := e.Units.Status(ctx, m.Unit)
		switch {
		case err != nil:
			pu.Action, pu.Why = "skip", "status: "+err.Error()
		case !us.Active:
			pu.Action, pu.Why = "skip", "not running ("+us.State+")"
		default:
			pu.Running = true
			if _, dfr := deferred[m.Unit.User]; !e.SkipPathCheck && !dfr && len(p.PathUsers) < pathTries {
				p.PathUsers = append(p.PathUsers, m.Unit.User)
			}
			if idle, why := e.idle(ctx, m); idle {
				pu.Action, pu.Why = "restart", "idle"
				restarts++
			} else {
				pu.Action, pu.Why = "defer", why
			}
		}
		p.Users = append(p.Users, pu)
	}
	if e.SeedUser != "" {
		p.Seed = e.SeedUser
	}
	p.Expected = e.expectedPrepare(len(fleet)) + EstimateHealth + time.Duration(restarts)*EstimateRestart

	if o.CheckCandidate {
		rep, err := e.checkCandidate(ctx, p.Target, fleet, p.Seed)
		if err != nil {
			rep = HealthReport{Passed: false, Reason: err.Error()}
		}
		p.Candidate = &rep
	}
	return p, nil
}

func (e *Engine) checkCandidate(ctx context.Context, target string, fleet []Member, seedUser string) (HealthReport, error) {
	if e.CandidateInstaller == nil || e.Health == nil {
		return HealthReport{}, fmt.Errorf("%w: CandidateInstaller and Health", ErrMissingDependency)
	}
	seed := ""
	for _, m := range fleet {
		if m.Unit.User != seedUser || e.Backups == nil {
			continue
		}
		snaps, err := e.Backups.List(ctx, m.Target(""))
		if err != nil {
			return HealthReport{}, fmt.Errorf("check candidate: list %s: %w", seedUser, err)
		}
		if s, ok := newest(snaps); ok {
			seed = s.Path
		}
	}
	// A Build without a binary makes checkBuild stage it into scratch.
	return e.checkBuild(ctx, Build{Version: target}, seed)
}

func newest(snaps []statebackup.Snapshot) (statebackup.Snapshot, bool) {
	var best statebackup.Snapshot
	ok := false
	for _, s := range snaps {
		if !ok || s.Time.After(best.Time) {
			best, ok = s, true
		}
	}
	return best, ok
}

// Lines renders the plan for a terminal, one fact per line. Every string
// it did not make itself goes through t3fleet.Printable (see Status.Lines):
// why a user would be deferred is their idle gate's verdict, which names
// their processes; a reason may quote what their instance answered.
func (p Plan) Lines() []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	q := t3fleet.Printable
	add("current %s, last-good %s", orNone(q(p.Current)), orNone(q(p.LastGood)))
	add("target %s: %s", q(p.Target), q(p.Why))
	if p.Journal != nil {
		add("an unfinished run (%s -> %s, phase %s) would be finished first", q(p.Journal.Previous), q(p.Journal.Target), q(string(p.Journal.Phase)))
	}
	if p.Freeze != nil {
		if p.Expired {
			add("freeze expired, would be ignored: %s", q(p.Freeze.String()))
		} else {
			add("FROZEN: %s", q(p.Freeze.String()))
		}
	}
	if p.Refusal != "" {
		add("refused: %s", q(p.Refusal))
	}
	if p.Go {
		add("would roll out %s -> %s; health check seeded from %s", orNone(q(p.Current)), q(p.Target), orNone(q(p.Seed)))
		switch {
		case len(p.PathUsers) > 0:
			add("verification path: before any change, %s in turn, until one pairs through the dispatch on %s (else VERIFY-PATH BROKEN, nothing changes)",
				strings.Join(p.PathUsers, ", "), orNone(q(p.Current)))
		case p.PathCheckSkipped:
			add("verification path: not checked (--skip-path-check)")
		default:
			add("verification path: no running user to check it with")
		}
	} else {
		add("would not roll out")
	}
	for i, u := range p.Users {
		add("%d. %s (%s) db=%dB backup=%s -> %s (%s)", i+1, u.User, q(u.Unit), u.DBSize, q(u.Backup), u.Action, q(u.Why))
	}
	if p.Candidate != nil {
		if p.Candidate.Passed {
			add("candidate health check passed (endpoint %s, cookie %s, schema %d, took %s)", q(p.Candidate.Endpoint), q(p.Candidate.Cookie), p.Candidate.Schema, p.Candidate.Took.Round(time.Millisecond))
		} else {
			add("candidate HEALTH-CHECK FAILED (%s)", q(p.Candidate.Reason))
		}
	}
	if p.Go {
		add("expected duration about %s", p.Expected)
	}
	return out
}

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(none)"
	}
	return s
}
