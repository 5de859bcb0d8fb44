//go:build linux && !race

package pairing

import (
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
)

// On Linux without the race detector, the tests in rawio_internal_test.go
// and the fast path's own run over raw system calls, on both sides.
func TestRawSocketIsRawForTCP(t *testing.T) {
	local, _ := tcpPair(t)
	assert.IsType(t, &rawIO{}, rawSocket(local))

	assert.IsType(t, &rawIO{}, socketIO(local, false))
	assert.Equal(t, net.Conn(local), socketIO(local, true), "PlainIO")
}

// A Read or Write through the raw calls allocates nothing: the callbacks
// are bound once per connection.
func TestRawSocketAllocatesNothingPerCall(t *testing.T) {
	local, peer := tcpPair(t)
	rw := rawSocket(local)
	msg := []byte("GET /assets/app.js HTTP/1.1\r\n\r\n")
	buf := make([]byte, 64)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := rw.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rw, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}
