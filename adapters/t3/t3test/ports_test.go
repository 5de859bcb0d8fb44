package t3test_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// A batch is distinct (picked one by one, a fleet of 48 repeats a port about
// one time in eight) and free once returned.
func TestFreePorts(t *testing.T) {
	for range 20 {
		ports, err := t3test.FreePorts(64)
		require.NoError(t, err)
		require.Len(t, ports, 64)
		seen := map[int]bool{}
		for _, p := range ports {
			require.False(t, seen[p], "port %d given twice", p)
			seen[p] = true
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(ports[0]))
		require.NoError(t, err, "the listeners are closed on return")
		ln.Close()
	}
}
