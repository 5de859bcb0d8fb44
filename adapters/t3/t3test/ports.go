package t3test

import (
	"fmt"
	"net"
)

// FreePorts returns n distinct loopback ports that were free a moment ago,
// for fake instances run as processes (`t3 serve --port P`). The listeners
// are all held until the last port is picked: ports picked one at a time,
// each listener closed before the next, repeat often enough (about one
// fleet of 48 in eight here) that two instances would be given one port, and
// the second's readiness check would be answered by the first.
func FreePorts(n int) ([]int, error) {
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free ports: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
