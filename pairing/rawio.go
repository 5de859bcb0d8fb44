package pairing

import (
	"io"
	"net"
)

// socketIO returns what to read c and write it with: c itself when plain,
// else rawSocket(c).
func socketIO(c net.Conn, plain bool) io.ReadWriter {
	if plain {
		return c
	}
	return rawSocket(c)
}
