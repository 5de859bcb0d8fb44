package pairing

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// idField and hostField make a head the fast path may carry; the cases vary the rest.
const (
	getLine   = "GET /a HTTP/1.1\r\n"
	idField   = "X-Authentik-Username: ana\r\n"
	hostField = "Host: h\r\n"
	getReq    = getLine + hostField + idField + "\r\n"
)

func postReq(fields, body string) string {
	return "POST /api HTTP/1.1\r\n" + hostField + idField + fields + "\r\n" + body
}

// requestSeeds are byte streams from a browser (through the proxy in front),
// each with the number of requests the fast path carries before it hands
// the connection to net/http (or the stream ends).
var requestSeeds = []struct {
	name    string
	raw     string
	carried int
}{
	{"plain get", getReq, 1},
	{"pipelined", getReq + getReq + "HEAD /b?x=1 HTTP/1.1\r\n" + hostField + idField + "\r\n", 3},
	{"post then get", postReq("Content-Length: 5\r\n", "hello") + getReq, 2},
	{"post empty body", postReq("Content-Length: 0\r\n", "") + getReq, 2},
	{"post body holds a request", postReq("Content-Length: "+strconv.Itoa(len(getReq))+"\r\n", getReq) + getReq, 2},
	{"post body short", postReq("Content-Length: 50\r\n", "short"), 0},
	{"length spaces", postReq("Content-Length:  5 \r\n", "hello") + getReq, 2},
	{"length leading zeros", postReq("Content-Length: 005\r\n", "hello") + getReq, 2},
	{"length plus", postReq("Content-Length: +5\r\n", "hello") + getReq, 0},
	{"length minus", postReq("Content-Length: -5\r\n", "hello") + getReq, 0},
	{"length list", postReq("Content-Length: 5, 5\r\n", "hello") + getReq, 0},
	{"length comma", postReq("Content-Length: 5,5\r\n", "hello") + getReq, 0},
	{"length twice same", postReq("Content-Length: 5\r\nContent-Length: 5\r\n", "hello") + getReq, 0},
	{"length twice differ", postReq("Content-Length: 5\r\nContent-Length: 0\r\n", "hello") + getReq, 0},
	{"length empty", postReq("Content-Length:\r\n", "") + getReq, 0},
	{"length hex", postReq("Content-Length: 0x5\r\n", "hello") + getReq, 0},
	{"length 19 digits", postReq("Content-Length: 0000000000000000005\r\n", "hello") + getReq, 0},
	{"length overflow", postReq("Content-Length: 99999999999999999999\r\n", "hello"), 0},
	{"length lower case", postReq("content-length: 5\r\n", "hello") + getReq, 2},
	{"length look-alike", postReq("Content_Length: 5\r\n", "hello") + getReq, 0},
	{"length on a get", getLine + hostField + idField + "Content-Length: 5\r\n\r\nhello" + getReq, 0},
	{"post no length", postReq("", "") + getReq, 0},
	{"chunked", postReq("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n") + getReq, 0},
	{"chunked and length", postReq("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "5\r\nhello\r\n0\r\n\r\n"), 0},
	{"chunked on a get", getLine + hostField + idField + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + getReq, 0},
	{"chunked lower", postReq("transfer-encoding: chunked\r\nContent-Length: 5\r\n", "hello") + getReq, 0},
	{"chunked look-alike", postReq("Transfer_Encoding: chunked\r\nContent-Length: 5\r\n", "hello") + getReq, 2},
	{"chunked space before colon", postReq("Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", "hello"), 0},
	{"chunked folded", postReq("X: y\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "hello"), 0},
	{"chunked vertical tab", postReq("Transfer-Encoding: \vchunked\r\nContent-Length: 5\r\n", "hello"), 0},
	{"te", getLine + hostField + idField + "TE: trailers\r\n\r\n", 0},
	{"expect", postReq("Expect: 100-continue\r\nContent-Length: 5\r\n", "hello"), 0},
	{"connection close", getLine + hostField + idField + "Connection: close\r\n\r\n" + getReq, 0},
	{"upgrade", getLine + hostField + idField + "Upgrade: websocket\r\n\r\n", 0},
	{"obs-fold", getLine + hostField + idField + "X-A: 1\r\n 2\r\n\r\n", 0},
	{"obs-fold tab", getLine + hostField + idField + "X-A: 1\r\n\t2\r\n\r\n", 0},
	{"bare LF head", "GET /a HTTP/1.1\nHost: h\nX-Authentik-Username: ana\n\n", 0},
	{"bare LF in a line", getLine + "Host: h\nX-Authentik-Username: ana\r\n\r\n", 0},
	// Only the last line ends in a bare LF, then the empty line: net/http
	// reads the same head (it takes a bare LF for a line end), and what
	// the instance gets is written afresh with CRLFs.
	{"bare LF last line", getLine + hostField + "X-Authentik-Username: ana\n\n" + getReq, 2},
	{"bare LF empty line", getLine + hostField + idField + "\n" + getReq, 0},
	{"CR without LF", getLine + hostField + idField + "X-A: 1\r2\r\n\r\n", 0},
	{"CR CR LF", getLine + hostField + "X-Authentik-Username: ana\r\r\n\r\n", 0},
	{"NUL in value", getLine + hostField + idField + "X-A: a\x00b\r\n\r\n", 0},
	{"NUL in name", getLine + hostField + idField + "X-\x00A: b\r\n\r\n", 0},
	{"DEL in value", getLine + hostField + idField + "X-A: a\x7fb\r\n\r\n", 0},
	{"form feed in value", getLine + hostField + idField + "X-A: a\fb\r\n\r\n", 0},
	{"obs-text in value", getLine + hostField + idField + "X-A: caf\xc3\xa9\r\n\r\n", 1},
	{"tab in value", getLine + hostField + idField + "X-A: \ta\tb\t\r\n\r\n", 1},
	{"space before colon", getLine + hostField + "X-Authentik-Username : ana\r\n\r\n", 0},
	{"empty name", getLine + hostField + idField + ": x\r\n\r\n", 0},
	{"no colon", getLine + hostField + idField + "X-A\r\n\r\n", 0},
	{"long value", getLine + hostField + idField + "X-A: " + strings.Repeat("v", 20<<10) + "\r\n\r\n", 0},
	{"many fields", getLine + hostField + idField + strings.Repeat("X-A: 1\r\n", 70) + "\r\n", 0},
	{"no host", getLine + idField + "\r\n", 0},
	{"two hosts", getLine + hostField + hostField + idField + "\r\n", 0},
	{"host with space", getLine + "Host: h h\r\n" + idField + "\r\n", 0},
	{"host with at", getLine + "Host: u@h\r\n" + idField + "\r\n", 0},
	{"host empty", getLine + "Host:\r\n" + idField + "\r\n", 0},
	{"absolute form", "GET http://h/a HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"asterisk form", "OPTIONS * HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"asterisk get", "GET * HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"authority form", "CONNECT h:80 HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"double slash", "GET //a HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"dot segment", "GET /a/../b HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"escape", "GET /a%2fb HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"query escape", "GET /a?x=%2F&y HTTP/1.1\r\n" + hostField + idField + "\r\n", 1},
	{"query bad escape", "GET /a?x=%zz HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"fragment", "GET /a#b HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"http 1.0", "GET /a HTTP/1.0\r\n" + hostField + idField + "\r\n", 0},
	{"http 1.0 keep-alive", "GET /a HTTP/1.0\r\n" + hostField + idField + "Connection: keep-alive\r\n\r\n" + getReq, 0},
	{"http 2", "GET /a HTTP/2.0\r\n" + hostField + idField + "\r\n", 0},
	{"http lower", "GET /a http/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"method lower", "get /a HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"two spaces", "GET  /a HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"space after version", "GET /a HTTP/1.1 \r\n" + hostField + idField + "\r\n", 0},
	{"tab separator", "GET\t/a HTTP/1.1\r\n" + hostField + idField + "\r\n", 0},
	{"leading empty line", "\r\n" + getReq, 0},
	// net/http's server skips an empty line after a POST's body (RFC 9112
	// 2.2 tolerance for old clients); the fast path hands the connection
	// over with it, and net/http, starting afresh, answers 400. A refusal
	// where net/http alone would serve: safe, and no browser sends it.
	{"empty line after post", postReq("Content-Length: 5\r\n", "hello") + "\r\n" + getReq, 1},
	{"identity lower", getLine + hostField + "x-authentik-username: ana\r\n\r\n", 1},
	{"identity underscore", getLine + hostField + "X-Authentik_Username: ana\r\n\r\n", 0},
	{"identity dots", getLine + hostField + "X.Authentik.Username: ana\r\n\r\n", 0},
	{"identity squashed", getLine + hostField + "XAuthentikUsername: ana\r\n\r\n", 0},
	{"identity and look-alike", getLine + hostField + idField + "X_Authentik_Username: bob\r\n\r\n", 0},
	{"identity twice", getLine + hostField + idField + "X-Authentik-Username: bob\r\n\r\n", 0},
	{"identity kelvin", getLine + hostField + "X-Authentik-Usernam\xe2\x84\xaa: ana\r\n\r\n", 0},
	{"identity empty", getLine + hostField + "X-Authentik-Username:\r\n\r\n", 1},
	{"identity in trailer", postReq("Trailer: X-Authentik-Username\r\nContent-Length: 0\r\n", ""), 0},
	{"forwarded fields", getLine + hostField + idField + "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n" +
		"X-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nForwarded: for=x\r\n\r\n", 1},
	{"proxy fields", getLine + hostField + idField + "Proxy-Connection: keep-alive\r\n\r\n", 0},
	{"incomplete", getLine + hostField + idField, 0},
}

// FuzzFrontReadsRequests runs a connection's bytes through the fast path's
// request loop (peekHead, parseFastHead, the body by its length) beside
// net/http's server reading the same bytes. Every request the fast path
// carries, net/http must read alike (method, target, host, fields, body)
// and end at the same byte, so that what follows (the next request, or the
// connection handed to net/http) is framed alike on both. What the fast
// path sends the instance must be strictly well-formed and read by
// net/http as the same request less the fields the proxy replaces.
//
// split > 0 delivers the bytes split reads at a time; small gives the
// reader the smallest buffer, so heads outgrow it.
func FuzzFrontReadsRequests(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add(s.raw, uint8(0), false)
		f.Add(s.raw, uint8(3), true)
	}
	f.Fuzz(func(t *testing.T, raw string, split uint8, small bool) {
		checkFrontReadsRequests(t, raw, split, small)
	})
}

func TestFrontReadsRequestsSeeds(t *testing.T) {
	for _, s := range requestSeeds {
		t.Run(s.name, func(t *testing.T) {
			require.Equal(t, s.carried, checkFrontReadsRequests(t, s.raw, 0, false))
			require.Equal(t, s.carried, checkFrontReadsRequests(t, s.raw, 1, false), "one byte per read")
		})
	}
}

// checkFrontReadsRequests returns how many requests the fast path carried.
func checkFrontReadsRequests(t *testing.T, raw string, split uint8, small bool) int {
	ir := NewIdentityResolver("", nil)
	var src io.Reader = strings.NewReader(raw)
	if split > 0 {
		src = &splitReader{r: src, n: int(split)}
	}
	size := 16 << 10 // fastConn's
	if small {
		size = 16
	}
	counted := &countingReader{r: src}
	br := bufio.NewReaderSize(counted, size)
	sr := strings.NewReader(raw)
	nb := bufio.NewReader(sr)
	var fields []field
	for carried := 0; ; carried++ {
		if _, err := br.Peek(1); err != nil {
			return carried
		}
		head := bufferedHead(br)
		if head == nil {
			var err error
			if head, err = peekHead(br); err != nil {
				return carried // too large: handed to net/http as it is; else the connection ends
			}
		}
		hd, ok := parseFastHead(head, ir, fields)
		fields = hd.fields
		if !ok {
			return carried // handed to net/http with every byte it has not read
		}
		req, err := readRequestAsServer(nb)
		require.NoError(t, err, "net/http refuses a head the fast path carries: %q", head)
		requireSameRequest(t, req, &hd, ir)

		br.Discard(len(head))
		var body bytes.Buffer
		bw := bufio.NewWriter(&body)
		bodyErr := copyN(bw, br, max(hd.length, 0), false)
		require.NoError(t, bw.Flush())
		netBody, netErr := io.ReadAll(req.Body)
		if bodyErr != nil {
			require.Error(t, netErr, "the fast path finds a body short that net/http reads whole")
			return carried // the connection ends
		}
		require.NoError(t, netErr)
		require.Equal(t, string(netBody), body.String())
		fastAt := counted.n - int64(br.Buffered())
		netAt := int64(len(raw) - sr.Len() - nb.Buffered())
		require.Equal(t, netAt, fastAt, "the next request starts at another byte for the fast path than for net/http")

		requireSameUpstream(t, req, &hd, body.Bytes(), ir)
	}
}

// readRequestAsServer reads a request as net/http's server does, with the
// checks it makes after reading the head (conn.readRequest). http.ReadRequest
// has taken Host out of the header: the check for it looks at req.Host, which
// comes from the field for an origin-form target (an empty Host field, which
// the server takes, reads as none here; the fast path refuses it anyway).
func readRequestAsServer(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	switch {
	case req.ProtoMajor != 1:
		return nil, errStrict
	case req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != "CONNECT":
		return nil, errStrict
	case !validHostHeader(req.Host):
		return nil, errStrict
	}
	for k, vv := range req.Header {
		if k == "" || !allTchar(k) {
			return nil, errStrict
		}
		for _, v := range vv {
			if !fieldValueBytes(v) {
				return nil, errStrict
			}
		}
	}
	return req, nil
}

// validHostHeader is httpguts.ValidHostHeader (which net/http's server
// applies): the bytes of RFC 3986's host and port.
func validHostHeader(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!$%&()*+,-.:;=[]_~'", c) >= 0) {
			return false
		}
	}
	return true
}

// requireSameRequest compares what the fast path parsed with net/http's
// request, and the request the Handler's plan reads with it.
func requireSameRequest(t *testing.T, req *http.Request, hd *fastHead, ir *IdentityResolver) {
	require.Equal(t, req.Method, hd.method)
	require.Equal(t, req.RequestURI, hd.target)
	require.Equal(t, req.Host, hd.host)
	require.Equal(t, req.URL.Path, hd.path)
	require.Equal(t, req.URL.RawQuery, hd.query)
	require.Equal(t, max(hd.length, 0), req.ContentLength)
	require.Empty(t, req.TransferEncoding)
	require.False(t, req.Close, "a request net/http would close after")
	require.Empty(t, req.Trailer)
	require.Equal(t, []string{hd.user}, req.Header[ir.Header()], "the identity net/http's path would see")
	got := http.Header{}
	for _, f := range hd.fields {
		if k := http.CanonicalHeaderKey(f.name); k != "Host" {
			got[k] = append(got[k], f.value)
		}
	}
	require.Equal(t, req.Header, got)
	r := hd.request(&reqScratch{}, "192.0.2.1:4000")
	want := req.Header.Clone()
	delete(want, ir.Header())
	require.Equal(t, want, r.Header)
	require.Equal(t, req.URL.EscapedPath(), r.URL.EscapedPath())
	require.Equal(t, req.URL.RawQuery, r.URL.RawQuery)
	require.Equal(t, req.ContentLength, r.ContentLength)
}

// requireSameUpstream checks what the fast path sends the instance: one
// strictly well-formed request, which net/http reads as the browser's less
// the identity header and Forwarded, with X-Forwarded-* set as forward sets
// them.
func requireSameUpstream(t *testing.T, req *http.Request, hd *fastHead, body []byte, ir *IdentityResolver) {
	var up bytes.Buffer
	bw := bufio.NewWriter(&up)
	writeFastRequest(bw, hd, "192.0.2.1")
	bw.Write(body)
	require.NoError(t, bw.Flush())
	m, err := readStrictRequest(up.Bytes())
	require.NoError(t, err, "sent to the instance: %q", up.Bytes())
	require.Zero(t, m.rest, "bytes after the request sent to the instance: %q", up.Bytes())

	got, err := http.ReadRequest(bufio.NewReader(&up))
	require.NoError(t, err)
	gotBody, err := io.ReadAll(got.Body)
	require.NoError(t, err)
	require.Zero(t, up.Len())
	require.Equal(t, string(body), string(gotBody))
	require.Equal(t, req.Method, got.Method)
	require.Equal(t, req.RequestURI, got.RequestURI)
	require.Equal(t, req.Host, got.Host)
	want := req.Header.Clone()
	delete(want, ir.Header())
	delete(want, "Forwarded")
	xff := "192.0.2.1"
	if prior := want["X-Forwarded-For"]; len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + xff
	}
	want["X-Forwarded-For"] = []string{xff}
	want["X-Forwarded-Host"] = []string{req.Host}
	want["X-Forwarded-Proto"] = []string{"http"}
	delete(got.Header, "Host")
	require.Equal(t, want, got.Header)
}

// splitReader returns at most n bytes per read.
type splitReader struct {
	r io.Reader
	n int
}

func (s *splitReader) Read(p []byte) (int, error) {
	return s.r.Read(p[:min(len(p), s.n)])
}
