package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/t3fleet/t3fleet/rollout"
)

// narrator prints the story, one timestamped line per step.
type narrator struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (n *narrator) say(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.w, "[%5.1fs] %s\n", time.Since(n.start).Seconds(), fmt.Sprintf(format, args...))
}

func (n *narrator) scene(title string) {
	n.mu.Lock()
	fmt.Fprintf(n.w, "\n== %s ==\n", title)
	n.mu.Unlock()
}

// event narrates one engine event in the operator's words. The upper-case
// words are the alert strings existing alert rules match.
func (n *narrator) event(ev rollout.Event) {
	errText := ""
	if ev.Err != nil {
		errText = ev.Err.Error()
	}
	switch ev.Kind {
	case rollout.EventResolved:
		n.say("  nightly resolves to %s (%s)", ev.Version, ev.Reason)
	case rollout.EventRefused:
		n.say("  refused %s: %s", ev.Version, ev.Reason)
	case rollout.EventBackedUp:
		n.say("  backed up %s -> %s", ev.User, filepath.Base(ev.Reason))
	case rollout.EventStaged:
		n.say("  staged %s side by side", ev.Version)
	case rollout.EventHealthChecked:
		n.say("  health check passed: throwaway serve on a copy of real data, minted, paired, session authenticated (%s)", ev.Reason)
	case rollout.EventHealthCheckFailed:
		n.say("  HEALTH-CHECK FAILED (%s): nothing was restarted", ev.Reason)
	case rollout.EventActivated:
		n.say("  activated %s", ev.Version)
	case rollout.EventDeferred:
		n.say("  deferred %s: busy (%s); marker written", ev.User, ev.Reason)
	case rollout.EventSkipped:
		n.say("  skipped %s: %s", ev.User, ev.Reason)
	case rollout.EventVerified:
		n.say("  %s restarted and paired through the dispatch in %s", ev.User, ev.Took.Round(time.Millisecond))
	case rollout.EventVerifyFailed:
		n.say("  %s: pairing through the dispatch FAILED (%s)", ev.User, firstLine(errText))
	case rollout.EventRestored:
		n.say("  restored %s's database from %s", ev.User, filepath.Base(ev.Reason))
	case rollout.EventRolledBack:
		n.say("  rolled back %s: %s", ev.Version, firstLine(ev.Reason))
	case rollout.EventRollbackFailed:
		n.say("  ROLLBACK FAILED: %s", firstLine(ev.Reason))
	case rollout.EventFrozen:
		n.say("  FROZEN: %s", ev.Reason)
	case rollout.EventDone:
		n.say("  done: %s is last-good (%s)", ev.Version, ev.Reason)
	case rollout.EventMarkerCleared:
		n.say("  cleared %s's marker: %s", ev.User, ev.Reason)
	case rollout.EventMigrated:
		n.say("  migrated %s onto %s (%s)", ev.User, ev.Version, ev.Reason)
	case rollout.EventStillDeferred:
		n.say("  %s still deferred: %s", ev.User, ev.Reason)
	case rollout.EventStaleMarker:
		n.say("  stale marker: %s %s", ev.User, ev.Reason)
	case rollout.EventProbeFailed:
		n.say("  watchdog: %s did not answer (%s): %s", ev.User, ev.Reason, firstLine(errText))
	case rollout.EventProvisioning:
		n.say("  watchdog: %s cannot be probed: %s", ev.User, ev.Reason)
	case rollout.EventWatchdogRestart:
		n.say("  watchdog: restarting %s on %s (%s)", ev.User, ev.Version, firstLine(ev.Reason))
	case rollout.EventWatchdogExhausted:
		n.say("  WATCHDOG-EXHAUSTED %s: %s", ev.User, ev.Reason)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
