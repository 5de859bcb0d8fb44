package pairing

import (
	"sync"
	"time"
)

// Loop guard defaults: more than DefaultLoopGuardMax pairings of one user
// inside DefaultLoopGuardWindow means the instance keeps rejecting fresh
// sessions, and another redirect would only loop.
const (
	DefaultLoopGuardMax    = 3
	DefaultLoopGuardWindow = time.Minute
)

// loopGuard counts recent pairings per user.
type loopGuard struct {
	max    int
	window time.Duration

	mu     sync.Mutex
	recent map[string][]time.Time
}

// allow reports whether user may be paired again at now.
func (g *loopGuard) allow(user string, now time.Time) bool {
	if g.max < 0 {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.prune(user, now)) < g.max
}

// record notes a successful pairing of user at now.
func (g *loopGuard) record(user string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.recent == nil {
		g.recent = map[string][]time.Time{}
	}
	g.recent[user] = append(g.prune(user, now), now)
}

func (g *loopGuard) prune(user string, now time.Time) []time.Time {
	ts := g.recent[user]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= g.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(g.recent, user)
		return nil
	}
	g.recent[user] = ts
	return ts
}
