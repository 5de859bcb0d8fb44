//go:build linux && !race

package pairing

import (
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
