package rollout_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// Every renderer of a line puts each string it did not make itself
// through t3fleet.Printable: a user controls some of them (what their
// instance answers, the names of their snapshots and processes, errors
// that quote these), and the state files are read back as found.
func TestLinesEscapeWhatTheyQuote(t *testing.T) {
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"x\nalice t3-serve@alice.service active version=0.0.28 backup=(none)",
		"\x1b[2J\x1b[1;32mok\x1b[0m",
		"a\tb",
		"bad\xff\xfename",
		"   ",
	} {
		snap := statebackup.Snapshot{Path: "/b/alice/state-" + s + ".sqlite", Time: at}
		freeze := &rollout.Freeze{Reason: s, Who: s}
		renders := map[string][]string{
			"status": rollout.Status{
				Current: s, LastGood: s, Freeze: freeze,
				DeadEnds:   []rollout.DeadEnd{{Version: s, Reason: s}},
				Markers:    []rollout.Marker{{User: "bob", Target: s, Written: at}},
				Journal:    &rollout.Journal{Previous: s, Target: s, Phase: rollout.Phase(s), Step: s},
				Cycle:      &rollout.UnfinishedCycle{User: s, Label: s, Version: s, Phase: s},
				Instances:  []rollout.InstanceStatus{{User: s, Unit: s, Status: rollout.UnitStatus{State: s}, Version: s, Deferred: s, NewestBackup: &snap, Err: s}},
				Unreadable: []error{errors.New(s)},
			}.Lines(),
			"plan": rollout.Plan{
				Current: s, LastGood: s, Target: s, Why: s, Go: true, Freeze: freeze, Refusal: s, Seed: s,
				Journal:   &rollout.Journal{Previous: s, Target: s, Phase: rollout.Phase(s)},
				PathUsers: []string{"alice"},
				Users:     []rollout.PlanUser{{User: "alice", Unit: s, Backup: s, Action: "defer", Why: s}},
				Candidate: &rollout.HealthReport{Reason: s},
			}.Lines(),
			"plan, candidate passed": rollout.Plan{Candidate: &rollout.HealthReport{Passed: true, Endpoint: s, Cookie: s}}.Lines(),
			"suspect build":          {rollout.SuspectBuild{Version: s, Users: []string{s, "bob"}, Restarts: 2, RolledOut: at, Last: at}.String()},
			"watchdog tick": rollout.WatchdogResult{Reason: s, Units: []rollout.WatchdogUnit{
				{User: "alice", Action: rollout.WatchdogRestarted, Failures: 3, Reason: s}}}.Lines(),
			"watchdog tick, locked": rollout.WatchdogResult{Locked: true, Reason: s}.Lines(),
			"drain":                 {rollout.DrainResult{Outcome: rollout.DrainDone, Waiting: []string{"bob (" + s + ")", "carol (" + s + ")"}}.Line()},
		}
		for _, o := range []rollout.Outcome{rollout.OutcomeDone, rollout.OutcomeFrozen, rollout.OutcomeRefused, rollout.OutcomeLocked,
			rollout.OutcomeHealthCheckFailed, rollout.OutcomeRolledBack, rollout.OutcomeRollbackFailed, rollout.OutcomeInterrupted, "failed"} {
			renders["run "+string(o)] = []string{rollout.Result{Outcome: o, Previous: s, Target: s, Reason: s}.Line()}
		}
		for _, o := range []rollout.DrainOutcome{rollout.DrainFrozen, rollout.DrainLocked, rollout.DrainPendingRun,
			rollout.DrainRolledBack, rollout.DrainRollbackFailed, "failed"} {
			renders["drain "+string(o)] = []string{rollout.DrainResult{Outcome: o, Reason: s}.Line()}
		}
		for name, lines := range renders {
			quoted := false
			for _, l := range lines {
				assert.True(t, utf8.ValidString(l), "%s of %q: invalid UTF-8 in %q", name, s, l)
				assert.Equal(t, -1, strings.IndexFunc(l, func(r rune) bool { return !strconv.IsPrint(r) }),
					"%s of %q: unprintable in %q", name, s, l)
				quoted = quoted || strings.Contains(l, `"`)
			}
			if name == "drain" && strings.TrimSpace(s) == "" {
				continue // "bob (   )": blanks inside a line are plain text
			}
			assert.True(t, quoted, "%s of %q: nothing quoted in %q", name, s, lines)
		}
	}
}
