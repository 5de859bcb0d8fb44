package pairing

import (
	"context"
	"sync"
)

// pairCall is one pairing in flight; everyone who asks for the same user
// while it runs waits for it and shares its result.
type pairCall struct {
	done chan struct{}
	s    *Session
	err  error
}

// coalescer runs at most one pairing per key at a time.
type coalescer struct {
	mu       sync.Mutex
	inflight map[string]*pairCall
}

// do runs fn for key unless a call for key is already in flight, in which
// case it waits for that one. fn runs detached from the caller's
// cancellation (a browser that gives up must not fail the others), bounded by
// the ctx fn builds.
func (c *coalescer) do(ctx context.Context, key string, fn func() (*Session, error)) (*Session, error) {
	c.mu.Lock()
	if c.inflight == nil {
		c.inflight = map[string]*pairCall{}
	}
	call, ok := c.inflight[key]
	if !ok {
		call = &pairCall{done: make(chan struct{})}
		c.inflight[key] = call
		c.mu.Unlock()
		go func() {
			defer func() {
				c.mu.Lock()
				delete(c.inflight, key)
				c.mu.Unlock()
				close(call.done)
			}()
			call.s, call.err = fn()
		}()
	} else {
		c.mu.Unlock()
	}
	select {
	case <-call.done:
		return call.s, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
