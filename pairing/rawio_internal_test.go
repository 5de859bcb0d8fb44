package pairing

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests hold rawSocket to what the fast path relies on from a
// net.Conn's Read and Write. They run on every build: on Linux without the
// race detector they test the raw system calls (rawio_linux_internal_test.go
// checks that those are what is tested), elsewhere the net.Conn itself.

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (local, peer *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	s := <-accepted
	require.NotNil(t, s)
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// waitingInPoller waits until a goroutine started by the test named
// testName is parked in the runtime's poller, waiting for its socket: what
// the test does next then reaches a Read that found nothing and waits.
func waitingInPoller(t *testing.T, testName string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "internal/poll.runtime_pollWait") && strings.Contains(g, "."+testName+".") {
				return
			}
		}
	}
	t.Fatal("the Read never waited in the poller")
}

func TestRawSocketReadWaitsForWhatComesLater(t *testing.T) {
	local, peer := tcpPair(t)
	rw := rawSocket(local)
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := rw.Read(buf)
		assert.NoError(t, err)
		got <- buf[:n]
	}()
	waitingInPoller(t, "TestRawSocketReadWaitsForWhatComesLater")
	_, err := peer.Write([]byte("GET / HTTP/1.1\r\n"))
	require.NoError(t, err)
	select {
	case b := <-got:
		assert.Equal(t, "GET / HTTP/1.1\r\n", string(b))
	case <-time.After(10 * time.Second):
		t.Fatal("Read never returned what the peer sent")
	}
}

func TestRawSocketReadEnds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, local, peer *net.TCPConn)
		// waiting, when set, runs once the Read waits in the poller.
		waiting func(t *testing.T, local, peer *net.TCPConn)
		check   func(t *testing.T, err error)
	}{
		{"the peer closed: EOF",
			func(t *testing.T, _, peer *net.TCPConn) { require.NoError(t, peer.Close()) }, nil,
			func(t *testing.T, err error) { assert.Equal(t, io.EOF, err) }},
		{"the peer reset",
			func(t *testing.T, _, peer *net.TCPConn) {
				require.NoError(t, peer.SetLinger(0))
				require.NoError(t, peer.Close())
			}, nil,
			func(t *testing.T, err error) {
				assert.ErrorIs(t, err, syscall.ECONNRESET)
				var oe *net.OpError
				require.ErrorAs(t, err, &oe, "shaped as net.Conn's errors, for the logs")
				assert.Equal(t, "read", oe.Op)
			}},
		{"the deadline passed: a timeout",
			func(t *testing.T, local, _ *net.TCPConn) {
				require.NoError(t, local.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
			}, nil,
			func(t *testing.T, err error) {
				assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
				var ne net.Error
				require.ErrorAs(t, err, &ne)
				assert.True(t, ne.Timeout(), "the fast path tells an idle timeout by net.Error's Timeout")
			}},
		{"closed here while waiting (the janitor's close)",
			func(*testing.T, *net.TCPConn, *net.TCPConn) {},
			func(t *testing.T, local, _ *net.TCPConn) { require.NoError(t, local.Close()) },
			func(t *testing.T, err error) { assert.ErrorIs(t, err, net.ErrClosed) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local, peer := tcpPair(t)
			rw := rawSocket(local)
			tc.setup(t, local, peer)
			done := make(chan error, 1)
			go func() {
				_, err := rw.Read(make([]byte, 64))
				done <- err
			}()
			if tc.waiting != nil {
				waitingInPoller(t, "TestRawSocketReadEnds")
				tc.waiting(t, local, peer)
			}
			select {
			case err := <-done:
				tc.check(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("Read did not return")
			}
		})
	}
}

// A write far bigger than the sockets' buffers (at most 4 MiB each by the
// kernel's defaults) finds them full (the raw write then waits for room)
// and all of it arrives, in order.
func TestRawSocketWriteWaitsForRoomAndSendsAll(t *testing.T) {
	local, peer := tcpPair(t)
	rw := rawSocket(local)
	data := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB
	want := sha256.Sum256(data)
	read := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		buf := make([]byte, 64<<10)
		for {
			n, err := peer.Read(buf)
			h.Write(buf[:n])
			if err != nil {
				break
			}
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		read <- sum
	}()
	n, err := rw.Write(data)
	require.NoError(t, err)
	assert.Equal(t, len(data), n)
	require.NoError(t, local.CloseWrite())
	select {
	case sum := <-read:
		assert.Equal(t, want, sum, "the bytes that arrived differ from those written")
	case <-time.After(30 * time.Second):
		t.Fatal("the peer never read the end of the write")
	}
}

func TestRawSocketWriteFailsOnAGonePeer(t *testing.T) {
	local, peer := tcpPair(t)
	require.NoError(t, peer.SetLinger(0))
	require.NoError(t, peer.Close()) // a reset: the next writes fail
	rw := rawSocket(local)
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = rw.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
	}
	require.Error(t, err, "writes to a reset connection kept succeeding")
	assert.True(t, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE), "the error is the peer's: %v", err)
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "write", oe.Op)
	// The next write gets EPIPE, and the kernel sends SIGPIPE with it: the
	// runtime ignores that signal for sockets, so the process lives on.
	_, err = rw.Write([]byte("x"))
	assert.ErrorIs(t, err, syscall.EPIPE)
}

func TestRawSocketWriteAfterCloseIsErrClosed(t *testing.T) {
	local, _ := tcpPair(t)
	rw := rawSocket(local)
	require.NoError(t, local.Close())
	_, err := rw.Write([]byte("x"))
	assert.ErrorIs(t, err, net.ErrClosed)
}

func TestRawSocketLeavesOtherConnsAsTheyAre(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	assert.Equal(t, io.ReadWriter(a), rawSocket(a))
}
