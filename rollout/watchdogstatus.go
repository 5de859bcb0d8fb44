package rollout

import (
	"fmt"
	"slices"
	"time"

	"github.com/t3fleet/t3fleet"
)

// StatusLines says, for each of users, what the watchdog holds against its
// unit: a cap of restarts it stands down for (WATCHDOG-EXHAUSTED was
// logged, and the cap still holds: until enough restarts have left the
// window), probes failing in a row, or restarts in the window of a unit
// that answers again. A unit it has nothing on gets no line. For
// `updater status`; it reads the counters and changes nothing.
func (w *Watchdog) StatusLines(users []string) ([]string, error) {
	o := w.withDefaults()
	now := w.Engine.now()
	var out []string
	for _, u := range users {
		c, err := w.Counters(u)
		if err != nil {
			return out, err
		}
		recent := slices.DeleteFunc(slices.Clone(c.Restarts), func(t time.Time) bool { return now.Sub(t) >= o.Window })
		slices.SortFunc(recent, time.Time.Compare)
		last := ""
		if c.LastError != "" {
			// What the probe met: what the user's instance answered, or
			// the error of its connection (t3fleet.Printable).
			last = "; last: " + t3fleet.Printable(c.LastError)
		}
		switch {
		case c.Exhausted && len(recent) >= o.MaxRestarts:
			// It acts again once fewer than MaxRestarts are in the window.
			until := recent[len(recent)-o.MaxRestarts].Add(o.Window)
			out = append(out, fmt.Sprintf("%s %s: %d restarts in the last %s, standing down until %s%s",
				EventWatchdogExhausted, u, len(recent), o.Window, until.UTC().Format(time.RFC3339), last))
		case c.Failures > 0:
			out = append(out, fmt.Sprintf("watchdog %s: %d failed probe(s) in a row (a restart at %d)%s", u, c.Failures, o.Failures, last))
		case len(recent) > 0:
			out = append(out, fmt.Sprintf("watchdog %s: answering; %d restart(s) in the last %s", u, len(recent), o.Window))
		}
	}
	return out, nil
}
