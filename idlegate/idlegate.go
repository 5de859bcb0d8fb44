package idlegate

import (
	"context"
	"time"

	"github.com/t3fleet/t3fleet"
)

// Verdict says whether an instance may be restarted now, and why.
type Verdict struct {
	Idle        bool
	Reason      string
	ActiveTurns int
	QuietFor    time.Duration
	// Suspicious is set when a turn has been in flight longer than the busy
	// ceiling: the caller may alert; the verdict stays "not idle".
	Suspicious bool
}

// IdleOracle judges whether an instance is idle. Any error means not idle.
type IdleOracle interface {
	Idle(ctx context.Context, in t3fleet.Instance) (Verdict, error)
}
