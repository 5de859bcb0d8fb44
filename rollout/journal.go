package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/t3fleet/t3fleet/statebackup"
)

// Phase is where a run stands; it says what a resuming run must finish.
type Phase string

// Phases of a run, in order. Before PhaseCanary nothing live has changed, so
// a resumed run starts over; PhaseCanary is finished forward, PhaseRollback
// backward, PhaseDone only needs its bookkeeping.
const (
	PhasePrepare  Phase = "prepare"
	PhaseCanary   Phase = "canary"
	PhaseRollback Phase = "rollback"
	PhaseDone     Phase = "done"
)

// Journal records a run's progress before each step acts, so a run that
// finds it after a crash can finish the rollout or the rollback.
type Journal struct {
	Target    string                          `json:"target"`
	Previous  string                          `json:"previous"` // the version active before the run
	Phase     Phase                           `json:"phase"`
	Step      string                          `json:"step"` // the last step begun
	Started   time.Time                       `json:"started"`
	Snapshots map[string]statebackup.Snapshot `json:"snapshots,omitempty"` // prebump snapshot per user
	Verified  []string                        `json:"verified,omitempty"`  // restarted onto Target and verified
	Deferred  []string                        `json:"deferred,omitempty"`
	Failed    string                          `json:"failed,omitempty"` // the user whose canary failed
	Reason    string                          `json:"reason,omitempty"`
	// NoDeadEnd: the rollback is not the target's fault (ErrWrongBuild), so
	// it does not dead-end it; the freeze still stops the next runs.
	NoDeadEnd bool `json:"no_dead_end,omitempty"`
}

func (j *Journal) verified(user string) bool { return slices.Contains(j.Verified, user) }
func (j *Journal) deferred(user string) bool { return slices.Contains(j.Deferred, user) }

// Journal returns the journal left by an unfinished run, nil when none.
func (s State) Journal() (*Journal, error) {
	var j Journal
	if found, err := s.readJSON(JournalFile, "journal", &j); err != nil || !found {
		return nil, err
	}
	switch j.Phase {
	case PhasePrepare, PhaseCanary, PhaseRollback, PhaseDone:
	default:
		return nil, fmt.Errorf("journal %s: %w: unknown phase %q", s.path(JournalFile), ErrMalformed, j.Phase)
	}
	if _, err := ParseVersion(j.Target); err != nil {
		return nil, fmt.Errorf("journal %s: %w: target: %v", s.path(JournalFile), ErrMalformed, err)
	}
	return &j, nil
}

// WriteJournal records j atomically.
func (s State) WriteJournal(j *Journal) error { return s.writeJSON(JournalFile, "journal", j) }

// RemoveJournal removes the journal; none is not an error.
func (s State) RemoveJournal() error { return s.removeSynced(JournalFile, "journal") }

// readJSON reads the state file name into v; found is false when there is
// none. A file that is not JSON is ErrMalformed, with its path and what to
// do, and is left as it is.
func (s State) readJSON(name, what string, v any) (found bool, err error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s %s: %w (%v); inspect it, then move it aside", what, s.path(name), ErrMalformed, err)
	}
	return true, nil
}

// writeJSON writes v, indented, to the state file name atomically.
func (s State) writeJSON(name, what string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return WriteFileAtomic(s.path(name), append(b, '\n'), 0o644)
}

// removeSynced removes the state file name and syncs the directory, so the
// removal survives a power loss; none is not an error.
func (s State) removeSynced(name, what string) error {
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", what, err)
	}
	return syncDir(s.Dir)
}
