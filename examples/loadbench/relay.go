package main

import (
	"io"
	"net"
	"net/url"
	"sync"
)

// relay forwards bytes between each accepted connection and a fresh one to
// the upstream, parsing nothing: a hop written the plainest way in Go (two
// goroutines and io.Copy per connection, the runtime's ordinary system
// calls), with no HTTP work at all. It was the floor the dispatch was held
// to until the dispatch's raw system calls took it past (docs/performance.md).
type relay struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

// startRelay listens on loopback and relays to upstreamURL's host.
func startRelay(upstreamURL string) (*relay, error) {
	u, err := url.Parse(upstreamURL)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, open: map[net.Conn]struct{}{}}
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Go(func() { r.serve(c, u.Host) })
		}
	})
	return r, nil
}

func (r *relay) URL() string { return "http://" + r.ln.Addr().String() }

func (r *relay) track(c net.Conn, add bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if add {
		r.open[c] = struct{}{}
	} else {
		delete(r.open, c)
	}
}

func (r *relay) serve(c net.Conn, host string) {
	defer c.Close()
	up, err := net.Dial("tcp", host)
	if err != nil {
		return
	}
	defer up.Close()
	r.track(c, true)
	r.track(up, true)
	defer r.track(c, false)
	defer r.track(up, false)
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, up)
	c.Close()
	<-done
}

// Close stops accepting and cuts the open relays.
func (r *relay) Close() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.open {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
