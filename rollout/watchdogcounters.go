package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/t3fleet/t3fleet"
)

// UnitCounters is what the watchdog remembers of one unit between ticks.
type UnitCounters struct {
	Failures  int         `json:"failures"`  // consecutive failed probes
	Restarts  []time.Time `json:"restarts"`  // watchdog restarts inside the window
	Exhausted bool        `json:"exhausted"` // WATCHDOG-EXHAUSTED was logged for the current cap
	LastError string      `json:"last_error,omitempty"`
}

// Counters reads user's counters; none yet is the zero value.
func (w *Watchdog) Counters(user string) (UnitCounters, error) {
	var c UnitCounters
	p, err := w.counterPath(user)
	if err != nil {
		return c, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("watchdog counters %s: %w", user, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		// A torn or hand-edited file must not wedge the watchdog: start over.
		return UnitCounters{}, nil
	}
	return c, nil
}

func (w *Watchdog) saveCounters(user string, c UnitCounters) error {
	p, err := w.counterPath(user)
	if err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return WriteFileAtomic(p, append(b, '\n'), 0o644)
}

func (w *Watchdog) counterPath(user string) (string, error) {
	if err := t3fleet.ValidOSUser(user); err != nil {
		return "", fmt.Errorf("watchdog counters: %w", err)
	}
	return filepath.Join(w.withDefaults().Dir, user+".json"), nil
}
