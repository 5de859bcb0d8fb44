package hostfiles_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/internal/realtest"
)

// accepted connects to a listener on addr with dial and returns the
// listener's end of the connection (the dispatch's view: local is its own
// address, remote the peer's) and closes both when the test ends.
func accepted(t testing.TB, network, addr string, dial func(port int) (closer func(), err error)) net.Conn {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		realtest.Missing(t, "no %s listener on %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	closeClient, err := dial(ln.Addr().(*net.TCPAddr).Port)
	require.NoError(t, err)
	t.Cleanup(closeClient)
	c, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func dialer(network, host string) func(int) (func(), error) {
	return func(port int) (func(), error) {
		c, err := net.Dial(network, net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, err
		}
		return func() { c.Close() }, nil
	}
}

// dialMapped connects an IPv6 socket to ::ffff:127.0.0.1, as a dual-stack
// client does (net.Dial would open an IPv4 socket): it is listed in tcp6.
func dialMapped(port int) (func(), error) {
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	sa := &syscall.SockaddrInet6{Port: port, Addr: [16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 1}}
	if err := syscall.Connect(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return func() { syscall.Close(fd) }, nil
}

func ends(c net.Conn) (local, remote netip.AddrPort) {
	return c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
}

// A real loopback connection made by this process is found, in the real
// tables, with this process's uid.
func TestTCPTableFindsOwnConnection(t *testing.T) {
	tests := []struct {
		name, network, addr string
		dial                func(int) (func(), error)
	}{
		{"127.0.0.1", "tcp4", "127.0.0.1:0", dialer("tcp4", "127.0.0.1")},
		{"::1", "tcp6", "[::1]:0", dialer("tcp6", "::1")},
		{"IPv6 socket to 127.0.0.1", "tcp4", "127.0.0.1:0", dialMapped},
		{"IPv4 client of a dual-stack listener", "tcp", ":0", dialer("tcp4", "127.0.0.1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := accepted(t, tc.network, tc.addr, tc.dial)
			local, remote := ends(c)
			uid, err := (&hostfiles.TCPTable{}).PeerUID(local, remote)
			require.NoError(t, err, "local %s remote %s", local, remote)
			require.Equal(t, uint32(os.Getuid()), uid)
		})
	}
}

// Once the peer has closed its socket, its line says uid 0 whoever opened
// it: the lookup fails instead of answering root.
func TestTCPTableClosedPeerHasNoOwner(t *testing.T) {
	var closeClient func()
	c := accepted(t, "tcp4", "127.0.0.1:0", func(port int) (func(), error) {
		cl, err := dialer("tcp4", "127.0.0.1")(port)
		closeClient = cl
		return func() {}, err
	})
	local, remote := ends(c)
	_, err := (&hostfiles.TCPTable{}).PeerUID(local, remote)
	require.NoError(t, err)
	closeClient() // our end stays open: the peer's waits in FIN-WAIT-2, unowned
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = (&hostfiles.TCPTable{}).PeerUID(local, remote)
		if errors.Is(err, hostfiles.ErrSocketUnowned) || errors.Is(err, hostfiles.ErrSocketNotFound) {
			return
		}
		require.True(t, time.Now().Before(deadline), "still owned after close: %v", err)
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkTCPTablePeerUID is the lookup the owner check makes once per
// connection from a local peer, on this machine's real tables.
func BenchmarkTCPTablePeerUID(b *testing.B) {
	c := accepted(b, "tcp4", "127.0.0.1:0", dialer("tcp4", "127.0.0.1"))
	local, remote := ends(c)
	tt := &hostfiles.TCPTable{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tt.PeerUID(local, remote); err != nil {
			b.Fatal(err)
		}
	}
}
