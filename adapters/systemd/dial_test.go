package systemd_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/systemd"
)

// A manager that accepts the connection and never answers the handshake
// (wedged) must not hold the updater past ctx.
func TestDialSocketHonoursContext(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "private")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	held := make(chan net.Conn, 8)
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c // held open, never answered
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = systemd.DialSocket(ctx, sock, systemd.Options{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 3*time.Second)
}
