package pairing

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A strict reader of what the fast path sends on (a request to the
// instance, a response to the browser), after RFC 9112 without any of the
// leniency a parser may have: CRLF only, no obs-fold, tokens for names, no
// control bytes, at most one framing field and only where it is allowed.
// Whatever passes it reads the same in every parser that follows the RFC,
// lenient or not; the fuzz tests require the fast path's output to pass.

// strictMessage is one message read strictly.
type strictMessage struct {
	startLine  string
	status     int // of a response
	fields     []field
	body       []byte
	untilClose bool // a response framed by the end of the connection
	rest       int  // bytes after the message
}

var (
	errStrict = errors.New("not strictly well-formed")
	// errStrictShort: the bytes end before the message does (a response
	// cut short, the connection closed); what there is was well-formed.
	errStrictShort = fmt.Errorf("%w: cut short", errStrict)
)

func strictErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errStrict}, args...)...)
}

// readStrictLine returns the line at the start of b, without its CRLF.
func readStrictLine(b []byte) (line string, rest []byte, err error) {
	i := bytes.Index(b, []byte("\r\n"))
	if i < 0 && !bytes.ContainsAny(b, "\r\n") {
		return "", nil, fmt.Errorf("%w: no line end in %q", errStrictShort, b)
	}
	if i < 0 {
		return "", nil, strictErr("no CRLF in %q", b)
	}
	line = string(b[:i])
	if strings.ContainsAny(line, "\r\n") {
		return "", nil, strictErr("bare CR or LF in %q", line)
	}
	return line, b[i+2:], nil
}

// readStrictFields reads field lines up to the empty line.
func readStrictFields(b []byte) ([]field, []byte, error) {
	var fields []field
	for {
		line, rest, err := readStrictLine(b)
		if err != nil {
			return nil, nil, err
		}
		b = rest
		if line == "" {
			return fields, b, nil
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || !allTchar(name) {
			return nil, nil, strictErr("field line %q", line)
		}
		value = strings.TrimPrefix(value, " ")
		if value != strings.Trim(value, " \t") || !fieldValue(value) {
			return nil, nil, strictErr("field value %q", line)
		}
		fields = append(fields, field{name: name, value: value})
	}
}

// framingFields returns the Content-Length (-1: none) and whether the
// message is chunked, refusing every ambiguous combination.
func framingFields(fields []field) (int64, bool, error) {
	length, chunked := int64(-1), false
	for _, f := range fields {
		switch {
		case nameIs(f.name, "Content-Length"):
			if length >= 0 || !allDigits(f.value) {
				return 0, false, strictErr("Content-Length %q (or a second one)", f.value)
			}
			n, err := strconv.ParseInt(f.value, 10, 64)
			if err != nil {
				return 0, false, strictErr("Content-Length %q", f.value)
			}
			length = n
		case nameIs(f.name, "Transfer-Encoding"):
			if chunked || !strings.EqualFold(f.value, "chunked") {
				return 0, false, strictErr("Transfer-Encoding %q (or a second one)", f.value)
			}
			chunked = true
		}
	}
	if chunked && length >= 0 {
		return 0, false, strictErr("both Content-Length and Transfer-Encoding")
	}
	return length, chunked, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// readStrictChunked reads a chunked body and its trailers.
func readStrictChunked(b []byte) (body, rest []byte, err error) {
	for {
		line, r, err := readStrictLine(b)
		if err != nil {
			return nil, nil, err
		}
		size, ext, _ := strings.Cut(line, ";")
		if strings.Contains(line, ";") {
			size = strings.TrimRight(size, " \t") // BWS before the extension
			if !fieldValue(ext) {
				return nil, nil, strictErr("chunk extension %q", line)
			}
		}
		if size == "" || len(size) > 15 || strings.Trim(size, "0123456789abcdefABCDEF") != "" {
			return nil, nil, strictErr("chunk size line %q", line)
		}
		n, _ := strconv.ParseInt(size, 16, 64)
		if n == 0 {
			if _, r, err = readStrictFields(r); err != nil {
				return nil, nil, err
			}
			return body, r, nil
		}
		if int64(len(r)) < n+2 {
			return nil, nil, fmt.Errorf("%w: a chunk of %d bytes", errStrictShort, n)
		}
		if string(r[n:n+2]) != "\r\n" {
			return nil, nil, strictErr("chunk of %d bytes not followed by CRLF", n)
		}
		body = append(body, r[:n]...)
		b = r[n+2:]
	}
}

// readStrictResponse reads the response to a request of method, as the
// browser (or a proxy in front) must read it whatever its leniency.
func readStrictResponse(b []byte, method string) (strictMessage, error) {
	var m strictMessage
	line, b, err := readStrictLine(b)
	if err != nil {
		return m, err
	}
	m.startLine = line
	code, reason, ok := strings.Cut(strings.TrimPrefix(line, "HTTP/1.1 "), " ")
	if !strings.HasPrefix(line, "HTTP/1.1 ") || !ok || len(code) != 3 || !allDigits(code) || !fieldValue(reason) {
		return m, strictErr("status line %q", line)
	}
	m.status, _ = strconv.Atoi(code)
	if m.status < 200 || m.status > 599 {
		return m, strictErr("status %d relayed", m.status)
	}
	if m.fields, b, err = readStrictFields(b); err != nil {
		return m, err
	}
	length, chunked, err := framingFields(m.fields)
	if err != nil {
		return m, err
	}
	switch {
	case m.status == 204 && (length >= 0 || chunked):
		return m, strictErr("framing field on a 204")
	case m.status == 304 && chunked:
		return m, strictErr("Transfer-Encoding on a 304")
	case method == "HEAD" || m.status == 204 || m.status == 304:
	case chunked:
		if m.body, b, err = readStrictChunked(b); err != nil {
			return m, err
		}
	case length >= 0:
		if int64(len(b)) < length {
			return m, fmt.Errorf("%w: body of %d bytes short of its length %d", errStrictShort, len(b), length)
		}
		m.body, b = b[:length], b[length:]
	default:
		m.body, b, m.untilClose = b, nil, true
	}
	m.rest = len(b)
	return m, nil
}

// readStrictRequest reads a request the fast path sends to an instance:
// HTTP/1.1, a Content-Length for a body and no other framing.
func readStrictRequest(b []byte) (strictMessage, error) {
	var m strictMessage
	line, b, err := readStrictLine(b)
	if err != nil {
		return m, err
	}
	m.startLine = line
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !allTchar(method) || method == "" || target == "" || !fieldValue(target) ||
		strings.Contains(target, " ") || proto != "HTTP/1.1" {
		return m, strictErr("request line %q", line)
	}
	if m.fields, b, err = readStrictFields(b); err != nil {
		return m, err
	}
	length, chunked, err := framingFields(m.fields)
	if err != nil {
		return m, err
	}
	if chunked {
		return m, strictErr("a chunked request on the fast path")
	}
	if length > int64(len(b)) {
		return m, strictErr("body of %d bytes short of its length %d", len(b), length)
	}
	length = max(length, 0)
	m.body, m.rest = b[:length], len(b)-int(length)
	return m, nil
}
