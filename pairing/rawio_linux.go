//go:build linux && !race

package pairing

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawIO reads and writes a TCP socket with system calls the Go scheduler
// does not see (syscall.RawSyscall), under the runtime's poller: the same
// deadlines, Close and readiness waits as the net.Conn's own Read and
// Write, and the same errors, without entersyscall and exitsyscall around
// each call.
//
// What that saves is mostly the runtime's sysmon thread: it sleeps while
// every P is idle, and the first ordinary system call after that wakes it
// to poll every 20 µs for the next millisecond (golang/go#18236). A proxy
// under load goes idle and back thousands of times a second, so sysmon
// polled nearly all the time; with raw calls it stays asleep. The sockets
// are non-blocking (the net package makes them so), so a raw call holds
// its thread no longer than the copy takes.
//
// One Read and one Write may run at once, as bufio uses them; not two of
// either. Under the race detector the net.Conn is used as it is
// (rawio_other.go), so that the detector still sees the order the socket's
// bytes give.
type rawIO struct {
	c  net.Conn
	rc syscall.RawConn
	r  rawCall // the Read in progress
	w  rawCall // the Write in progress
	// readFn and writeFn are the methods bound once, so that a call
	// allocates nothing.
	readFn, writeFn func(uintptr) bool
}

// rawCall is one Read's or Write's buffer and outcome, for its callback.
type rawCall struct {
	buf []byte
	n   int
	err error
}

// rawSocket returns what to read c and write it with: raw system calls for
// a *net.TCPConn, c itself for anything else.
func rawSocket(c net.Conn) io.ReadWriter {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawIO{c: c, rc: rc}
	r.readFn, r.writeFn = r.read1, r.write1
	return r
}

// Read reads what the socket holds into p, waiting for it when there is
// nothing yet. End of stream is io.EOF, as from net.Conn.
func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.r = rawCall{buf: p}
	err := r.rc.Read(r.readFn)
	n := r.r.n
	if err == nil {
		err = r.r.err
	}
	r.r = rawCall{}
	switch {
	case err != nil:
		return 0, r.opError("read", err)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// read1 is one try: false when the socket has nothing yet, so the poller
// waits for it to become readable and calls again.
func (r *rawIO) read1(fd uintptr) bool {
	b := r.r.buf
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			r.r.n = int(n)
			return true
		case syscall.EAGAIN:
			return false
		case syscall.EINTR:
			continue
		}
		r.r.err = os.NewSyscallError("read", e)
		return true
	}
}

// Write writes all of p, waiting for room in the socket's buffer when it is
// full, and returns how much went with the first error.
func (r *rawIO) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.w = rawCall{buf: p}
	err := r.rc.Write(r.writeFn)
	n := r.w.n
	if err == nil {
		err = r.w.err
	}
	r.w = rawCall{}
	if err != nil {
		return n, r.opError("write", err)
	}
	return n, nil
}

// write1 writes until p is all written (true), the socket's buffer is full
// (false: the poller waits for room and calls again) or an error (true).
func (r *rawIO) write1(fd uintptr) bool {
	b := r.w.buf
	for r.w.n < len(b) {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[r.w.n])), uintptr(len(b)-r.w.n))
		switch {
		case e == syscall.EAGAIN:
			return false
		case e == syscall.EINTR:
		case e != 0:
			r.w.err = os.NewSyscallError("write", e)
			return true
		case n == 0:
			r.w.err = io.ErrUnexpectedEOF // as the runtime's own Write has it
			return true
		default:
			r.w.n += int(n)
		}
	}
	return true
}

// opError wraps err as the net package wraps a TCPConn's errors.
func (r *rawIO) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: r.c.LocalAddr(), Addr: r.c.RemoteAddr(), Err: err}
}
