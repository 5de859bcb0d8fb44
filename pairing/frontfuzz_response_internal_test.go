package pairing

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// responseSeeds are instance answers where a relay can go wrong: framing
// (length, chunked, until close, none), its conflicts, 1xx, and heads a
// lenient reader takes differently from a strict one. Each is also run as a
// plain test by FuzzFrontRelaysResponse.
var responseSeeds = []struct {
	name string
	raw  string
	want string // to a GET; a HEAD is relayed unless refused
}{
	{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", relayed},
	{"length then next", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", relayed},
	{"length leading zeros", "HTTP/1.1 200 OK\r\nContent-Length: 0002\r\n\r\nok", relayed},
	{"length minus zero", "HTTP/1.1 200 OK\r\nContent-Length: -0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", refused},
	{"length plus", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", refused},
	{"length empty", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nok", refused},
	{"length empty and set", "HTTP/1.1 200 OK\r\nContent-Length: \r\nContent-Length: 2\r\n\r\nok", refused},
	{"length twice same", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", relayed},
	{"length twice same number", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 02\r\n\r\nok", refused},
	{"length twice differ", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", refused},
	{"length list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", refused},
	{"length hex", "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok", refused},
	{"length space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n", relayed},
	{"length folded", "HTTP/1.1 200 OK\r\nX: a\r\n Content-Length: 2\r\n\r\nok", refused},
	{"length short", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok", cut},
	{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", relayed},
	{"chunked upper", "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", relayed},
	{"chunked and length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", relayed},
	{"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refused},
	{"chunked list", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", refused},
	{"chunked identity", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok", refused},
	{"chunked extension", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a=b;c=\"d\"\r\nok\r\n0;x\r\n\r\n", relayed},
	{"chunked extension space", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 ;a=b\r\nok\r\n0\r\n\r\n", cut},
	{"chunked size space", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\nok\r\n0\r\n\r\n", relayed},
	{"chunked size tab", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\t\r\nok\r\n0\r\n\r\n", relayed},
	{"chunked size leading space", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 2\r\nok\r\n0\r\n\r\n", cut},
	{"chunked size plus", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\nok\r\n0\r\n\r\n", cut},
	{"chunked size 0x", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n", cut},
	{"chunked size huge", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\nok\r\n0\r\n\r\n", cut},
	{"chunked size overflow", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000002\r\nok\r\n0\r\n\r\n", cut},
	{"chunked size bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n", cut},
	{"chunked data bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\n0\r\n\r\n", cut},
	{"chunked data too long", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nok\r\n0\r\n\r\n", cut},
	{"chunked extension CR", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a\rb\r\nok\r\n0\r\n\r\n", cut},
	{"chunked trailers", "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\nContent-Length: 5\r\n\r\n", relayed},
	{"chunked bare LF end", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\n", cut},
	{"chunked bare LF trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX: 1\n\r\n", cut},
	{"chunked trailer fold", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\n 2\r\n\r\n", cut},
	{"chunked trailer bad name", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX Sum: 1\r\n\r\n", cut},
	{"chunked trailer quote name", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\":\r\n\r\n", cut},
	{"chunked no last", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n", cut},
	{"chunked then next", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", relayed},
	{"chunked in 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 13\r\n\r\n2\r\nok\r\n0\r\n\r\n", refused},
	{"until close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", relayed},
	{"1.0 length", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", relayed},
	{"1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", relayed},
	{"close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", relayed},
	{"connection names length", "HTTP/1.1 200 OK\r\nConnection: Content-Length, X-A\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok", relayed},
	{"204 with length", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", relayed},
	{"204 chunked", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", relayed},
	{"304 with length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", relayed},
	{"304 chunked", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", relayed},
	{"100 then 200", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", relayed},
	{"103 with length", "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", relayed},
	{"103 with empty length", "HTTP/1.1 103 Early Hints\r\nContent-Length:\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", refused},
	{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", refused},
	{"status only", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", relayed},
	{"status extra CR", "HTTP/1.1 200 OK\r\r\nContent-Length: 0\r\n\r\n", refused},
	{"1xx status extra CR", "HTTP/1.0 100\r\r\n\r\nHTTP/1.0 200\n\r\n", refused},
	{"status bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", relayed},
	{"status 600", "HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n", refused},
	{"status plus", "HTTP/1.1 +20 X\r\nContent-Length: 0\r\n\r\n", refused},
	{"status 2000", "HTTP/1.1 2000 OK\r\n\r\n", refused},
	{"status tab", "HTTP/1.1 200\tOK\r\nContent-Length: 0\r\n\r\n", refused},
	{"status NUL", "HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n", refused},
	{"version 1.2", "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n", refused},
	{"field CR", "HTTP/1.1 200 OK\r\nX: a\rContent-Length: 2\r\n\r\nok", refused},
	{"field NUL", "HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok", refused},
	{"field no colon", "HTTP/1.1 200 OK\r\nX\r\nContent-Length: 2\r\n\r\nok", refused},
	{"field empty name", "HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 2\r\n\r\nok", refused},
	{"first line folded", "HTTP/1.1 200 OK\r\n Content-Length: 2\r\n\r\nok", refused},
	{"blank line CR CR", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\r\nok", refused},
	{"not http", "SSH-2.0-OpenSSH\r\n\r\n", refused},
	{"empty", "", refused},
}

// FuzzFrontRelaysResponse feeds the instance's bytes to the fast path's
// response relay (readResponseHead, relayBody) and to net/http's
// ReadResponse, as the Transport of net/http's path would read them.
//
// What the fast path relays must be one well-formed response and nothing
// more (checked strictly by readStrictResponse: a second response in what
// the browser gets is a split), with the status and body net/http reads. It
// may refuse (502) where net/http accepts; where it accepts, net/http must
// too, and when it keeps the instance's connection both must have read the
// same bytes.
func FuzzFrontRelaysResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add(s.raw, false, uint8(0))
		f.Add(s.raw, true, uint8(1))
	}
	f.Fuzz(func(t *testing.T, raw string, head bool, split uint8) {
		checkRelayedResponse(t, raw, head, split)
	})
}

// What became of an instance's answer: refused (the browser gets a 502),
// relayed whole, or cut (a head relayed, the body broken midway: the
// browser's connection closes).
const (
	refused = "refused"
	relayed = "relayed"
	cut     = "cut"
)

func checkRelayedResponse(t *testing.T, raw string, head bool, split uint8) string {
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	var out bytes.Buffer
	fc := &fastConn{f: &Front{}, bw: bufio.NewWriterSize(&out, 16<<10)}
	var src io.Reader = strings.NewReader(raw)
	if split%2 == 1 {
		src = iotest.OneByteReader(src) // the instance's answer in as many reads as bytes
	}
	counted := &countingReader{r: src}
	br := bufio.NewReaderSize(counted, 16<<10)
	rh, headErr := fc.readResponseHead(br, head, false)
	var bodyErr error
	if headErr == nil {
		bodyErr = fc.relayBody(br, rh)
	}
	require.NoError(t, fc.bw.Flush())
	if headErr != nil {
		require.Zero(t, out.Len(), "nothing reaches the browser of a head refused (its 502 is written after)")
		return refused
	}
	// What the browser gets: one response, strictly well-formed, then
	// nothing (or, framed until close, the end of the connection).
	got, err := readStrictResponse(out.Bytes(), method)
	if bodyErr == nil {
		require.NoError(t, err, "relayed %q", out.Bytes())
		require.Zero(t, got.rest, "bytes after the relayed response: %q", out.Bytes())
	} else if err == nil {
		// Cut short: the browser's connection is closed after this, and
		// what came through must not read as a whole response (unless
		// it is, before the error).
		require.Zero(t, got.rest, "bytes after the relayed response: %q", out.Bytes())
	}
	require.Equal(t, rh.framing == untilClose, got.untilClose, "a body without a length is relayed as one")

	// net/http's Transport on the same bytes.
	sr := strings.NewReader(raw)
	nb := bufio.NewReader(sr)
	dropped := 0
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(nb, &http.Request{Method: method})
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == 101 {
			break
		}
	}
	if err != nil {
		// A field whose name is no token is dropped by the fast path (as
		// net/http's server drops it when it writes the response); net/http's
		// Transport refuses some ('"'), takes others (' '). Dropping one
		// cannot change the framing, which only tokens name: net/http must
		// read the head without them.
		sanitized := dropNonTokenFields(raw)
		dropped = len(raw) - len(sanitized) // all in the head: read by both
		sr = strings.NewReader(sanitized)
		nb = bufio.NewReader(sr)
		for {
			resp, err = http.ReadResponse(nb, &http.Request{Method: method})
			if err != nil || resp.StatusCode >= 200 || resp.StatusCode == 101 {
				break
			}
		}
		raw = sanitized
	}
	require.NoError(t, err, "net/http refuses a head the fast path relays: %q", raw)
	require.Equal(t, resp.StatusCode, rh.status)
	require.Equal(t, resp.StatusCode, got.status)
	body, err := io.ReadAll(resp.Body)
	if bodyErr != nil {
		return cut // both may fail differently on a broken body; the browser's connection closes
	}
	require.NoError(t, err, "net/http fails a body the fast path relays whole: %q", raw)
	require.Equal(t, string(body), string(got.body))
	if rh.reusable {
		require.False(t, resp.Close, "the fast path keeps a connection net/http would close")
		consumed := counted.n - int64(br.Buffered())
		netConsumed := int64(dropped + len(raw) - sr.Len() - nb.Buffered())
		require.Equal(t, netConsumed, consumed, "the fast path pools the instance's connection at another place than net/http")
	}
	return relayed
}

// dropNonTokenFields removes from raw's heads (through the first final one)
// the field lines whose name is no token.
func dropNonTokenFields(raw string) string {
	var b strings.Builder
	lines := strings.SplitAfter(raw, "\n")
	status, final := true, false
	for i, l := range lines {
		switch {
		case status:
			code := strings.TrimPrefix(strings.TrimPrefix(l, "HTTP/1.1 "), "HTTP/1.0 ")
			status, final = false, !strings.HasPrefix(code, "1") || strings.HasPrefix(code, "101")
		case l == "\n" || l == "\r\n":
			if final {
				return b.String() + strings.Join(lines[i:], "")
			}
			status = true
		default:
			name, _, ok := strings.Cut(l, ":")
			if ok && name != "" && !allTchar(name) && name[0] != ' ' && name[0] != '\t' {
				continue
			}
		}
		b.WriteString(l)
	}
	return b.String()
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Seeds as a table too, with what each must come to, so a change of mind
// shows in review.
func TestFrontRelaysResponseSeeds(t *testing.T) {
	for _, s := range responseSeeds {
		for _, head := range []bool{false, true} {
			t.Run(s.name, func(t *testing.T) {
				got := checkRelayedResponse(t, s.raw, head, 0)
				require.Equal(t, got, checkRelayedResponse(t, s.raw, head, 1), "in one read or byte by byte")
				want := s.want
				if head && want != refused {
					want = relayed
				}
				require.Equal(t, want, got)
			})
		}
	}
}
