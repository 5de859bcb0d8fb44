package pairing

import (
	"net"
	"syscall"
)

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
