package pairing_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/pairing"
)

// earlyAnswerer answers every request's head at once, 413, and closes
// without reading the body: an instance with an upload limit.
func earlyAnswerer(t *testing.T) string {
	t.Helper()
	return rawInstance(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
	})
}

// An upload the instance refuses before reading it (16 MiB, more than the
// sockets buffer) gets the instance's answer, not a connection cut, and
// the answer says the connection closes. (On
// net/http's path the same race ends in a 413 or a 502, as its Transport
// sees the reset first or the answer.)
func TestFrontRelaysAnEarlyAnswerToALargeUpload(t *testing.T) {
	for range 5 {
		t.Run("front", func(t *testing.T) {
			ft := newFrontUnderTest(t, earlyAnswerer(t), pairing.FrontOptions{}, nil)
			req, err := http.NewRequest(http.MethodPost, ft.url+"/api/upload", bytes.NewReader(make([]byte, 16<<20)))
			require.NoError(t, err)
			req.Header.Set("X-Authentik-Username", "ana")
			req.Header.Set("Cookie", "t3_session=live")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
			require.Equal(t, "too large", body(t, resp))
			// The rest of the body is never read: the connection closes
			// after the answer, which must say so, lest the proxy in
			// front send another request (anyone's) down it meanwhile.
			require.True(t, resp.Close, "the early answer says Connection: close")
			require.Zero(t, ft.fallbacks.Load(), "on the fast path")
		})
	}
}
