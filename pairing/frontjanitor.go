package pairing

import (
	"net"
	"syscall"
	"time"
)

// janitorTick is how often the janitor looks at connections waiting on
// their instance.
const janitorTick = 500 * time.Millisecond

// janitor looks, every janitorTick, at the browser's side of each
// connection whose request has been with its instance since the last look
// (the connection's own goroutine is blocked on the instance's side): if
// the browser has closed it, the instance connection is closed, which ends
// the wait. A wedged instance, or an event stream with nothing to send,
// would otherwise hold the goroutine and both sockets until it answered.
func (f *Front) janitor() {
	t := time.NewTicker(janitorTick)
	defer t.Stop()
	seen := map[*fastConn]uint64{}
	var waiting []*fastConn
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		waiting = waiting[:0]
		f.mu.Lock()
		for fc := range f.conns {
			if fc.waiting.Load() {
				waiting = append(waiting, fc)
			}
		}
		f.mu.Unlock()
		next := make(map[*fastConn]uint64, len(waiting))
		for _, fc := range waiting {
			seq := fc.seq.Load()
			if prev, ok := seen[fc]; ok && prev == seq && fc.waiting.Load() && clientGone(fc.nc) {
				if c := fc.upc.Load(); c != nil {
					c.nc.Close()
				}
			}
			next[fc] = seq
		}
		seen = next
	}
}

// clientGone reports whether the peer of c has closed or reset it, by a
// peek that neither blocks nor takes the connection's read lock (its own
// goroutine may be reading it): bytes the peer sent stay for that reader.
func clientGone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			gone = n == 0 // an orderly close
		case err == syscall.EAGAIN || err == syscall.EINTR:
		default:
			gone = true // reset, or worse
		}
	})
	return gone
}
