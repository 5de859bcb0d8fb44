package pairing

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// maxFastFields bounds the header fields of a request the fast path
// carries; more go to net/http.
const maxFastFields = 64

// errHeadTooLarge: the head did not fit the connection's read buffer; it is
// handed to net/http, which applies its own limit.
var errHeadTooLarge = errors.New("request head larger than the fast path's buffer")

// peekHead returns the bytes of the next request head, through the blank
// line, without consuming them: they stay in br for whoever serves the
// request. It reads more only while the head is incomplete and br has room.
func peekHead(br *bufio.Reader) ([]byte, error) {
	if _, err := br.Peek(1); err != nil {
		return nil, err
	}
	for {
		buf, _ := br.Peek(br.Buffered())
		if n := headEnd(buf); n >= 0 {
			return buf[:n], nil
		}
		if len(buf) >= br.Size() {
			return nil, errHeadTooLarge
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// bufferedHead returns the next request head when br holds all of it
// already, nil otherwise; it reads nothing.
func bufferedHead(br *bufio.Reader) []byte {
	buf, _ := br.Peek(br.Buffered())
	if n := headEnd(buf); n >= 0 {
		return buf[:n]
	}
	return nil
}

// headEnd is the length of the request head at the start of buf, through
// its blank line, or -1 while buf holds no blank line. A line may end in a
// bare LF, as net/http accepts; the head the fast path sends upstream is
// written anew, every line ending in CRLF (FuzzFrontReadsRequests checks
// both read such heads alike).
func headEnd(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		k := i + j + 1 // just past this line's LF
		switch {
		case k < len(buf) && buf[k] == '\n':
			return k + 1
		case k+1 < len(buf) && buf[k] == '\r' && buf[k+1] == '\n':
			return k + 2
		}
		i = k
	}
}

// field is one header field, its value trimmed.
type field struct {
	name, value string
	kind        fieldKind // of a request field
}

type fieldKind uint8

// What the fast path does with a request field: forward it, drop it
// (X-Forwarded-Host, -Proto and Forwarded, which it sets itself; the
// identity header, which the Handler deletes before it decides) or fold it
// into the X-Forwarded-For it sends.
const (
	plainField fieldKind = iota
	droppedField
	identityField
	forwardedForField
)

// fastHead is a request the fast path may carry: HTTP/1.1, an origin-form
// target net/http's ServeMux would not redirect, one Host, the identity
// header exactly once under its own name, nothing hop-by-hop, and either GET
// or HEAD without a body or POST, PUT, PATCH or DELETE with one
// Content-Length (no chunked bodies, no Expect). Its strings share one copy
// of the head.
type fastHead struct {
	method string
	target string // path and query as sent
	path   string
	query  string
	host   string
	user   string // the identity header's value
	length int64  // of the body; -1: none
	fields []field
}

// bodyMethods may carry a body on the fast path (and are never sent twice).
var bodyMethods = [...]string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// parseFastHead parses raw (a whole head, as peekHead returns it) and reports
// whether the fast path may carry it; anything unusual is left to net/http,
// which parses it again with its own rules and answers it.
// The fields are appended to fields[:0] (a buffer the caller reuses).
func parseFastHead(raw []byte, ir *IdentityResolver, fields []field) (fastHead, bool) {
	s := string(raw[:len(raw)-2]) // one copy; keeps each line's CRLF
	var h fastHead
	line, rest, ok := strings.Cut(s, "\r\n")
	if !ok {
		return h, false
	}
	method, target, _ := strings.Cut(line, " ")
	body := false
	switch method {
	case http.MethodGet:
		h.method = http.MethodGet
	case http.MethodHead:
		h.method = http.MethodHead
	default:
		for _, m := range bodyMethods {
			if method == m {
				h.method, body = m, true
			}
		}
		if !body {
			return h, false
		}
	}
	target, ok = strings.CutSuffix(target, " HTTP/1.1")
	if !ok || !fastTarget(target) {
		return h, false
	}
	h.target = target
	h.path, h.query, _ = strings.Cut(target, "?")
	hosts, users, lengths := 0, 0, 0
	h.length = -1
	h.fields = fields[:0]
	for rest != "" {
		line, rest, _ = strings.Cut(rest, "\r\n")
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || !allTchar(name) || !fieldValue(value) || len(h.fields) == maxFastFields {
			return h, false // includes obs-fold: a line starting with a space is no token
		}
		f := field{name: name, value: strings.Trim(value, " \t")}
		switch {
		case foldsTo(name, ir.folded):
			if !nameIs(name, ir.header) {
				return h, false // a look-alike spelling: net/http's path refuses it
			}
			users++
			h.user, f.kind = f.value, identityField
		case nameIs(name, "Host"):
			hosts++
			h.host = f.value
		case nameIs(name, "X-Forwarded-For"):
			f.kind = forwardedForField
		case nameIs(name, "X-Forwarded-Host"), nameIs(name, "X-Forwarded-Proto"), nameIs(name, "Forwarded"):
			f.kind = droppedField
		case body && nameIs(name, "Content-Length"):
			lengths++
			h.length = contentLength(f.value)
		case hopOrBody(name):
			return h, false
		}
		h.fields = append(h.fields, f)
	}
	if hosts != 1 || !fastHost(h.host) || users != 1 || body && (lengths != 1 || h.length < 0) {
		return h, false
	}
	return h, true
}

// contentLength parses a Content-Length of 1 to 18 digits; -1 otherwise.
func contentLength(v string) int64 {
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return -1
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n
}

// hopOrBody reports the fields that make a request not the fast path's:
// framing of a body, upgrades and everything hop-by-hop.
func hopOrBody(name string) bool {
	switch len(name) {
	case 2:
		return nameIs(name, "Te")
	case 6:
		return nameIs(name, "Expect")
	case 7:
		return nameIs(name, "Upgrade") || nameIs(name, "Trailer")
	case 10:
		return nameIs(name, "Connection") || nameIs(name, "Keep-Alive")
	case 14:
		return nameIs(name, "Content-Length") || nameIs(name, "Http2-Settings")
	case 16:
		return nameIs(name, "Proxy-Connection")
	case 17:
		return nameIs(name, "Transfer-Encoding")
	case 18:
		return nameIs(name, "Proxy-Authenticate")
	case 19:
		return nameIs(name, "Proxy-Authorization")
	}
	return false
}

// fastTarget accepts an origin-form target whose path has no escapes and
// nothing net/http's ServeMux would clean (and redirect), and whose query
// forward would pass unchanged (forwardableQuery, canForward's rule).
func fastTarget(t string) bool {
	if len(t) == 0 || t[0] != '/' || strings.HasPrefix(t, "//") {
		return false
	}
	path, query, _ := strings.Cut(t, "?")
	for i := 0; i < len(path); i++ {
		if !pathByte(path[i]) {
			return false
		}
	}
	if strings.Contains(path, "//") || strings.Contains(path, "/./") || strings.Contains(path, "/../") ||
		strings.HasSuffix(path, "/.") || strings.HasSuffix(path, "/..") {
		return false
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c != '%' && c != '?' && !pathByte(c) {
			return false
		}
	}
	return forwardableQuery(query)
}

// pathByte: unreserved, the sub-delims but ';', ':', '@' and '/'.
func pathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,=:@/", c) >= 0
}

// fastHost accepts host names, IPv4 and bracketed IPv6 literals with a port.
func fastHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._:[]", c) >= 0) {
			return false
		}
	}
	return true
}

// allTchar reports whether s is an RFC 9110 token.
func allTchar(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// nameIs compares a field name (a token, so ASCII) with want, ignoring
// case; unlike strings.EqualFold it looks at the lengths first.
func nameIs(name, want string) bool {
	return len(name) == len(want) && strings.EqualFold(name, want)
}

// fieldValue refuses control bytes other than HTAB, as net/http does. It
// runs over every byte of every field, so it looks at eight bytes at a
// time and byte by byte only at a word holding a byte below 0x20 or a DEL.
func fieldValue(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64([]byte(s[i : i+8]))
		below := (w - 0x20*ones) &^ w & highs // a byte < 0x20 (bytes >= 0x80 never count)
		x := w ^ 0x7f*ones
		del := (x - ones) &^ x & highs // a byte == 0x7f
		if below|del != 0 && !fieldValueBytes(s[i:i+8]) {
			return false
		}
	}
	return fieldValueBytes(s[i:])
}

func fieldValueBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// reqScratch holds one connection's request while the Handler's plan reads
// it. plan keeps nothing of the request itself (what it keeps are strings,
// which point into the head's own copy), so each request of the connection
// is built over the last one's map, slices and structs: a request costs no
// allocation of its own, and the garbage collector runs less often under
// load. A request that must outlive its turn is cloned first.
type reqScratch struct {
	r    http.Request
	u    url.URL
	hd   http.Header
	vals []string
}

// request is the *http.Request the Handler's plan reads: method, header,
// host, peer and a URL with the path and query, built in s (valid until the
// next call on s). It has no context of its own (plan takes one); the
// identity header is left out, as plan deletes it.
func (h *fastHead) request(s *reqScratch, remoteAddr string) *http.Request {
	if s.hd == nil {
		s.hd = make(http.Header, len(h.fields))
	} else {
		clear(s.hd)
	}
	if cap(s.vals) < len(h.fields) {
		s.vals = make([]string, len(h.fields))
	}
	vals := s.vals[:len(h.fields)]
	clear(vals) // the last head's strings go with it
	hd := s.hd
	for i, f := range h.fields {
		if f.kind == identityField {
			continue
		}
		k := textproto.CanonicalMIMEHeaderKey(f.name)
		if k == "Host" {
			continue // r.Host, as net/http's server does
		}
		if vv, ok := hd[k]; ok {
			hd[k] = append(vv, f.value) // copies: vals[i] must not be overwritten
			continue
		}
		vals[i] = f.value
		hd[k] = vals[i : i+1 : i+1]
	}
	s.u = url.URL{Path: h.path, RawQuery: h.query}
	if rawPathNeeded(h.path) {
		s.u.RawPath = h.path // as url.Parse: the path as sent (no escapes here), so EscapedPath gives it back
	}
	s.r = http.Request{Method: h.method, URL: &s.u, Proto: "HTTP/1.1",
		ProtoMajor: 1, ProtoMinor: 1, Header: hd, Host: h.host, RemoteAddr: remoteAddr, RequestURI: h.target,
		Body: http.NoBody, ContentLength: max(h.length, 0)}
	return &s.r
}

// rawPathNeeded reports whether url.URL would escape a byte of p (which the
// fast path accepts only without escapes) that the browser sent as it is:
// anything but letters, digits and -_.~$&+,/:;=@.
func rawPathNeeded(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-_.~$&+,/:;=@", c) >= 0:
		default:
			return true
		}
	}
	return false
}
