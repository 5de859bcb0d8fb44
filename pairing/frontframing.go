package pairing

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// How a response from an instance is framed: the checks that decide
// whether the fast path relays it, and how its body ends.

// frame works out how the body ends (RFC 9112 section 6.3) and whether the
// connection can be pooled afterwards.
// Content-Length is refused, as net/http's Transport refuses it, when it is
// empty, anything but digits ("-0", "+1") or said twice differently ("1",
// "01"): the relay sends one of them on, which must be the length it used.
// Transfer-Encoding in an HTTP/1.0 response is faulty framing (RFC 9112
// 6.1; net/http ignores it and reads the Content-Length), refused too.
func (rh *respHead) frame(fields []field, head, http11 bool) error {
	rh.length = -1
	te, cl := "", ""
	tes := 0
	for _, f := range fields {
		switch {
		case nameIs(f.name, "Content-Length"):
			n, err := strconv.ParseInt(f.value, 10, 64)
			if err != nil || n < 0 || f.value[0] == '+' || f.value[0] == '-' || (rh.length >= 0 && f.value != cl) {
				return fmt.Errorf("%w: Content-Length %q", errBadResponse, f.value)
			}
			rh.length, cl = n, f.value
		case nameIs(f.name, "Transfer-Encoding"):
			te, tes = f.value, tes+1
		case nameIs(f.name, "Connection"):
			if headerValueHasToken(f.value, "close") {
				rh.reusable = false
			}
		case nameIs(f.name, "Content-Type"):
			rh.stream = isStream(f.value)
		}
	}
	if tes > 1 || tes == 1 && (!strings.EqualFold(te, "chunked") || !http11) {
		return fmt.Errorf("%w: Transfer-Encoding %q", errBadResponse, te)
	}
	switch {
	case head || rh.status == 204 || rh.status == 304:
		rh.framing = noBody
	case tes > 0:
		rh.framing = chunkedBody // a Content-Length beside it is ignored and not relayed (RFC 9112 6.3)
	case rh.length >= 0:
		rh.framing = lengthBody
	default:
		rh.framing, rh.reusable = untilClose, false
	}
	return nil
}

func headerValueHasToken(v, token string) bool {
	for t := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// connectionTokens lists the fields a Connection field names.
func connectionTokens(fields []field) []string {
	var out []string
	for _, f := range fields {
		if nameIs(f.name, "Connection") {
			for t := range strings.SplitSeq(f.value, ",") {
				if t = strings.TrimSpace(t); t != "" {
					out = append(out, t)
				}
			}
		}
	}
	return out
}

// dropResponseField: the hop-by-hop fields forward removes, but
// Transfer-Encoding and Trailer, which the relayed chunked body still needs.
func dropResponseField(name string, named []string) bool {
	for _, h := range hopHeaders {
		if h != "Transfer-Encoding" && h != "Trailer" && nameIs(name, h) {
			return true
		}
	}
	if nameIs(name, "Content-Length") || nameIs(name, "Transfer-Encoding") {
		return false // the framing of what is relayed
	}
	for _, n := range named {
		if nameIs(name, n) {
			return true
		}
	}
	return false
}

// chunkSize parses a chunk-size line ("1a;ext\r\n") as net/http does:
// trailing whitespace is allowed, whitespace before an extension is not.
func chunkSize(line []byte) (int64, bool) {
	l := bytes.TrimSuffix(line, []byte("\r\n"))
	if len(l) == len(line) {
		return 0, false
	}
	l = bytes.TrimRight(l, " \t")
	if i := bytes.IndexByte(l, ';'); i >= 0 {
		if !fieldValue(string(l[i:])) {
			return 0, false
		}
		l = l[:i]
	}
	if len(l) == 0 || len(l) > 15 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(l), 16, 64)
	return n, err == nil && n >= 0 && l[0] != '+' && l[0] != '-'
}
