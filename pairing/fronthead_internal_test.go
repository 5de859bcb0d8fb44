package pairing

import (
	"bufio"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Whatever head the fast path accepts, net/http's own parser reads the same
// way: same method, target, host, fields and no body. So the fast path never
// forwards a request that net/http would have seen differently.
func FuzzParseFastHead(f *testing.F) {
	ir := NewIdentityResolver("", nil)
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\n\r\n",
		"HEAD /a/b.js?v=1&x=%2F HTTP/1.1\r\nHost: t3.example:8443\r\nx-authentik-username: a.b@c\r\nCookie: t3_session=x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nContent-Length: 0\r\n\r\n",
		"GET /a HTTP/1.1\r\nAccept: a\r\nHost: h\r\nX-Y: 1\r\naccept: b\r\nX-Authentik-Username: ana\r\nX-Forwarded-For: 1.2.3.4\r\nACCEPT: c\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: h\r\nHost: i\r\nX-Authentik-Username: ana\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\n fold\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username :ana\r\n\r\n",
		"GET /a HTTP/1.1\nHost: h\nX-Authentik-Username: ana\n\r\n\r\n",
		"GET http://evil/ HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\n\r\n",
		"GET /a\x00b HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nX: a\x7fb\r\n\r\n",
		"GET /./a HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\n\r\n",
		"GET /a(b)!*' HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\n\r\n",
		"POST /api HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nContent-Length: 12\r\n\r\n",
		"POST /api HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nContent-Length: +12\r\n\r\n",
		"DELETE /api HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add(s)
	}
	var scratch reqScratch // every request built over the last one's
	f.Fuzz(func(t *testing.T, raw string) {
		i := strings.Index(raw, "\r\n\r\n")
		if i < 0 {
			return
		}
		raw = raw[:i+4]
		h, ok := parseFastHead([]byte(raw), ir, nil)
		if !ok {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		require.NoError(t, err, "net/http refuses a head the fast path took: %q", raw)
		require.Equal(t, req.Method, h.method)
		require.Equal(t, req.RequestURI, h.target)
		require.Equal(t, req.Host, h.host)
		require.Equal(t, req.URL.Path, h.path)
		require.Equal(t, req.URL.RawQuery, h.query)
		require.Equal(t, max(h.length, 0), req.ContentLength)
		require.Equal(t, h.length >= 0, h.method != http.MethodGet && h.method != http.MethodHead, "a body exactly for the body methods")
		require.Empty(t, req.TransferEncoding)
		require.False(t, req.Close)
		got := http.Header{}
		for _, fl := range h.fields {
			k := textproto.CanonicalMIMEHeaderKey(fl.name)
			got[k] = append(got[k], fl.value)
		}
		delete(req.Header, "Host")
		delete(got, "Host")
		require.Equal(t, req.Header, got)
		require.Equal(t, []string{h.user}, req.Header.Values(ir.Header()))
		// The request the plan reads is net/http's, less the identity
		// header, which plan deletes anyway.
		r := h.request(&scratch, "192.0.2.1:4000")
		req.Header.Del(ir.Header())
		require.Equal(t, req.Header, r.Header)
		require.Equal(t, req.Method, r.Method)
		require.Equal(t, req.Host, r.Host)
		require.Equal(t, req.URL.Path, r.URL.Path)
		require.Equal(t, req.URL.EscapedPath(), r.URL.EscapedPath(), "the 302 back uses it")
		require.Equal(t, req.URL.RawQuery, r.URL.RawQuery)
		require.Equal(t, req.ContentLength, r.ContentLength)
	})
}

// A connection's requests are built in one scratch: the next one keeps
// nothing of the last (no field, no value, no path), and a clone taken of
// the last (what a pairing answer gets) does not change under it.
func TestRequestScratchKeepsNothingOfTheLastRequest(t *testing.T) {
	ir := NewIdentityResolver("", nil)
	parse := func(raw string) *fastHead {
		h, ok := parseFastHead([]byte(raw), ir, nil)
		require.True(t, ok, "%q", raw)
		return &h
	}
	first := parse("GET /first?a=1 HTTP/1.1\r\nHost: h\r\nAccept: a\r\nX-Y: 1\r\naccept: b\r\n" +
		"X-Authentik-Username: ana\r\nCookie: t3_session=one\r\n\r\n")
	second := parse("POST /b/c HTTP/1.1\r\nHost: i\r\nX-Authentik-Username: bo\r\nAccept: z\r\nContent-Length: 3\r\n\r\n")

	var s reqScratch
	r1 := first.request(&s, "192.0.2.1:4000")
	kept := r1.Clone(t.Context())
	want1 := first.request(&reqScratch{}, "192.0.2.1:4000").Clone(t.Context())
	require.Equal(t, []string{"a", "b"}, r1.Header.Values("Accept"))

	r2 := second.request(&s, "192.0.2.2:4000")
	fresh := second.request(&reqScratch{}, "192.0.2.2:4000")
	require.Equal(t, fresh.Header, r2.Header, "nothing of the first request's fields")
	require.Equal(t, http.Header{"Accept": {"z"}, "Content-Length": {"3"}}, r2.Header)
	require.Equal(t, *fresh.URL, *r2.URL)
	require.Equal(t, "POST", r2.Method)
	require.Equal(t, int64(3), r2.ContentLength)
	require.Equal(t, "192.0.2.2:4000", r2.RemoteAddr)

	require.Equal(t, want1.Header, kept.Header, "the clone is the first request's own")
	require.Equal(t, *want1.URL, *kept.URL)
	require.Equal(t, "GET", kept.Method)
}

// fieldValue reads eight bytes at a time: it must say what the byte loop
// says for every byte at every position, and for any mix.
func TestFieldValueMatchesTheByteLoop(t *testing.T) {
	base := []byte("value with room: 0123456789abcdef")
	for b := range 256 {
		for pos := range len(base) {
			s := append([]byte{}, base...)
			s[pos] = byte(b)
			require.Equal(t, fieldValueBytes(string(s)), fieldValue(string(s)), "byte %#x at %d", b, pos)
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		s := make([]byte, rnd.IntN(40))
		for i := range s {
			s[i] = byte(rnd.IntN(256))
			if rnd.IntN(4) > 0 {
				s[i] = byte(0x20 + rnd.IntN(0x5f)) // mostly printable, so some pass
			}
		}
		require.Equal(t, fieldValueBytes(string(s)), fieldValue(string(s)), "%q", s)
	}
}
