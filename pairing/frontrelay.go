package pairing

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// errBadResponse: the instance's response cannot be relayed as it is.
var errBadResponse = errors.New("malformed response from the instance")

// errWriteSide: copyN failed writing, not reading.
var errWriteSide = errors.New("write")

// framing is how a response body ends.
type framing int

const (
	noBody framing = iota
	lengthBody
	chunkedBody
	untilClose // until the instance closes: the client connection closes too
)

// respHead is what the relay needs to know of a response head read from the
// instance (the head itself is already written to the client's buffer).
type respHead struct {
	status   int
	framing  framing
	length   int64
	reusable bool // the instance keeps the connection open
	stream   bool // flushed as it arrives (text/event-stream and the like)
	last     bool // the client connection closes after it (said Connection: close)
}

// fastForward carries one request the plan sends to its instance, over a
// pooled connection of t, and relays the response to cw. It reports whether
// the client connection may carry another request.
func (fc *fastConn) fastForward(hd *fastHead, p plan) bool {
	f, cw := fc.f, fc.bw
	host := hostPort(p.target)
	t := f.up
	// From here until the response is relayed, the janitor looks after the
	// browser's side: this goroutine is busy with the instance's.
	fc.seq.Add(1)
	fc.waiting.Store(true)
	defer fc.waiting.Store(false)
	if hd.length > 0 {
		// A body is not bound by the head's or the idle deadline (as on
		// net/http's server, which puts none on a body).
		fc.nc.SetReadDeadline(time.Time{})
		fc.idleSince = time.Time{}
	}
	// A request with a body is never sent twice, so it goes on a fresh
	// connection, which cannot have been closed by the instance meanwhile.
	first := 0
	if hd.length >= 0 {
		first = 1
	}
	for attempt := first; ; attempt++ {
		c, reused, err := t.acquire(f.ctx, host, attempt) // the dialer has its own timeout
		if err != nil {
			return fc.badGateway(hd, p, err, hd.length > 0)
		}
		fc.upc.Store(c)
		writeFastRequest(c.bw, hd, fc.peerIP)
		if hd.length > 0 {
			if err := copyN(c.bw, fc.br, hd.length, false); err != nil {
				fc.upc.Store(nil)
				if errors.Is(err, errWriteSide) {
					return fc.earlyAnswer(c, hd, p, err) // the instance stopped taking the body
				}
				c.nc.Close()
				return false // the browser's body broke midway
			}
		}
		err = c.bw.Flush()
		if err == nil && reused {
			_, err = c.br.Peek(1) // a pooled conn the instance closed reads as EOF here
		}
		if err != nil {
			c.nc.Close()
			fc.upc.Store(nil)
			if reused {
				continue // GET and HEAD may go again, once, on a fresh connection
			}
			return fc.badGateway(hd, p, err, false)
		}
		rh, err := fc.readResponseHead(c.br, hd.method == "HEAD", false)
		if err != nil {
			c.nc.Close() // readResponseHead wrote nothing to cw
			fc.upc.Store(nil)
			return fc.badGateway(hd, p, err, false)
		}
		if rh.stream {
			err = cw.Flush() // the browser opens the stream on its head
		}
		if err == nil {
			err = fc.relayBody(c.br, rh)
		}
		if err == nil {
			err = cw.Flush()
		}
		fc.upc.Store(nil)
		if err != nil {
			c.nc.Close()
			if rh.framing == untilClose {
				// Such a body ends where its connection does: closing the
				// browser's would pass what came off as the whole body.
				// A reset says it was cut short.
				if tc, ok := fc.nc.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
			}
			return false // the head is gone: all that is left is to cut the response short
		}
		if rh.reusable {
			t.put(c)
		} else {
			c.nc.Close()
		}
		return rh.framing != untilClose && !rh.last
	}
}

// writeFastRequest writes what forward would send for hd: the fields as the
// client sent them but the identity header and the X-Forwarded-* and
// Forwarded ones, which are replaced.
func writeFastRequest(bw *bufio.Writer, hd *fastHead, peerIP string) {
	bw.WriteString(hd.method)
	bw.WriteByte(' ')
	bw.WriteString(hd.target)
	bw.WriteString(" HTTP/1.1\r\n")
	for _, f := range hd.fields {
		if f.kind != plainField {
			continue
		}
		writeField(bw, f.name, f.value)
	}
	bw.WriteString("X-Forwarded-For: ")
	for _, f := range hd.fields {
		if f.kind == forwardedForField {
			bw.WriteString(f.value)
			bw.WriteString(", ")
		}
	}
	bw.WriteString(peerIP)
	bw.WriteString("\r\nX-Forwarded-Host: ")
	bw.WriteString(hd.host)
	bw.WriteString("\r\nX-Forwarded-Proto: http\r\n\r\n")
}

// writeField writes one "name: value" line.
func writeField(w *bufio.Writer, name, value string) {
	w.WriteString(name)
	w.WriteString(": ")
	w.WriteString(value)
	w.WriteString("\r\n")
}

// readResponseHead reads the instance's response head (skipping 1xx ones),
// checks it as strictly as net/http would, and writes the head to relay into
// cw (not flushed). last: the client connection closes after this
// response, and the head says so.
func (fc *fastConn) readResponseHead(br *bufio.Reader, head, last bool) (respHead, error) {
	cw := fc.bw
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return respHead{}, err
		}
		var rh respHead
		var status []byte
		http11 := false
		switch {
		case bytes.HasPrefix(line, []byte("HTTP/1.1 ")):
			rh.reusable, http11 = true, true
		case bytes.HasPrefix(line, []byte("HTTP/1.0 ")):
		default:
			return rh, fmt.Errorf("%w: status line %q", errBadResponse, line)
		}
		// One line end (CRLF, or a bare LF as net/http reads it): a CR
		// left over fails fieldValue below (net/http takes "100\r" for a
		// malformed code, "OK\r" for a reason).
		status = bytes.TrimSuffix(bytes.TrimSuffix(line[9:], []byte("\n")), []byte("\r"))
		if len(status) < 3 || (len(status) > 3 && status[3] != ' ') || !fieldValue(string(status)) {
			return rh, fmt.Errorf("%w: status line %q", errBadResponse, line)
		}
		code, err := strconv.Atoi(string(status[:3]))
		if err != nil || code < 100 || code > 599 {
			return rh, fmt.Errorf("%w: status line %q", errBadResponse, line)
		}
		rh.status = code
		// Keep the status until the fields are checked: line is only valid
		// until the next read.
		fc.scratch = append(fc.scratch[:0], "HTTP/1.1 "...)
		fc.scratch = append(fc.scratch, status...)
		if len(status) == 3 {
			fc.scratch = append(fc.scratch, ' ') // the reason may be empty, its space may not (RFC 9112 4)
		}
		fc.scratch = append(fc.scratch, "\r\n"...)
		fields, lines, err := readFields(br, fc.lines, fc.fieldBuf[:0], false)
		fc.fieldBuf, fc.lines = fields[:0], lines
		if cap(lines) > 64<<10 {
			fc.lines = nil // an unusually large head: not kept for the connection's life
		}
		if err != nil {
			return rh, err
		}
		if code == 101 {
			return rh, fmt.Errorf("%w: 101 Switching Protocols to a request that asked for no upgrade", errBadResponse)
		}
		// A 1xx's framing fields are checked too, as net/http checks them.
		if err := rh.frame(fields, head, http11); err != nil {
			return rh, err
		}
		if code < 200 {
			continue // informational: not relayed, as forward does
		}
		cw.Write(fc.scratch)
		drop := connectionTokens(fields)
		// One Content-Length at most is relayed (frame made sure any
		// others say the same), none beside chunked nor on a 204, which
		// has none (RFC 9110 8.6): a reader that takes a second one, or a
		// 204's, for the length would read into the next response.
		lengthSent := rh.framing == chunkedBody || rh.status == 204
		for _, fl := range fields {
			if dropResponseField(fl.name, drop) || rh.framing != chunkedBody && nameIs(fl.name, "Transfer-Encoding") {
				continue
			}
			if nameIs(fl.name, "Content-Length") {
				if lengthSent {
					continue
				}
				lengthSent = true
			}
			writeField(cw, fl.name, fl.value)
		}
		if last || fc.f.closed.Load() {
			// The connection closes after this response (shutting down, or
			// a request body left unread), and says so, as net/http's
			// server does.
			rh.last = true
			cw.WriteString("Connection: close\r\n")
		}
		cw.WriteString("\r\n")
		return rh, nil
	}
}

// maxResponseHead bounds the fields of a response head (or its trailers),
// as net/http's Transport bounds them by default.
const maxResponseHead = 10 << 20

// readFields reads header (or trailer) fields up to the blank line,
// collecting the lines in buf first so that one string holds them all.
// Lines may end in a bare LF, as net/http reads a head, and a field whose
// name is no token is dropped; but not in trailers, which net/http reads
// more strictly (it looks for CRLF CRLF, refuses such names): there, both
// fail the body.
func readFields(br *bufio.Reader, buf []byte, into []field, trailers bool) ([]field, []byte, error) {
	buf = buf[:0]
	long := false // the line so far did not fit br's buffer
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return into, buf, err
		}
		if trailers && err == nil && (len(line) < 2 || line[len(line)-2] != '\r') {
			return into, buf, fmt.Errorf("%w: trailer line %q not ended by CRLF", errBadResponse, line)
		}
		if !long && err == nil && len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			break
		}
		if !long && (line[0] == ' ' || line[0] == '\t') {
			// obs-fold: a proxy must answer 502 or unfold it (RFC 9112
			// 5.2); dropping the line, as a field it cannot name, would
			// relay another head than the instance sent.
			return into, buf, fmt.Errorf("%w: folded field line %q", errBadResponse, line)
		}
		long = err == bufio.ErrBufferFull
		buf = append(buf, line...)
		if len(buf) > maxResponseHead {
			return into, buf, fmt.Errorf("%w: fields longer than %d bytes", errBadResponse, maxResponseHead)
		}
	}
	for s := string(buf); s != ""; {
		var l string
		l, s, _ = strings.Cut(s, "\n")
		l = strings.TrimSuffix(l, "\r")
		name, value, ok := strings.Cut(l, ":")
		if !ok || !fieldValue(value) {
			return into, buf, fmt.Errorf("%w: field %q", errBadResponse, l)
		}
		if name == "" {
			return into, buf, fmt.Errorf("%w: field %q", errBadResponse, l) // as net/http's Transport
		}
		if !allTchar(name) {
			if trailers {
				return into, buf, fmt.Errorf("%w: trailer %q", errBadResponse, l)
			}
			continue // as net/http's server: a field it cannot write is dropped
		}
		into = append(into, field{name: name, value: strings.Trim(value, " \t")})
	}
	return into, buf, nil
}

// relayBody copies the body from the instance to the client as framed.
func (fc *fastConn) relayBody(br *bufio.Reader, rh respHead) error {
	cw := fc.bw
	switch rh.framing {
	case lengthBody:
		return copyN(cw, br, rh.length, rh.stream)
	case chunkedBody:
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return err
			}
			size, ok := chunkSize(line)
			if !ok {
				return fmt.Errorf("%w: chunk size line %q", errBadResponse, line)
			}
			// The size as read, without extensions (which a recipient
			// ignores) or whitespace, which readers take differently.
			fc.scratch = strconv.AppendInt(fc.scratch[:0], size, 16)
			fc.scratch = append(fc.scratch, "\r\n"...)
			cw.Write(fc.scratch)
			if size == 0 {
				trailers, lines, err := readFields(br, fc.lines, fc.fieldBuf[:0], true)
				fc.fieldBuf, fc.lines = trailers[:0], lines
				if err != nil {
					return err
				}
				for _, t := range trailers {
					writeField(cw, t.name, t.value)
				}
				_, err = cw.WriteString("\r\n")
				return err
			}
			if err := copyN(cw, br, size, false); err != nil {
				return err
			}
			crlf, err := br.Peek(2)
			if err != nil || crlf[0] != '\r' || crlf[1] != '\n' {
				return fmt.Errorf("%w: chunk not followed by CRLF", errBadResponse)
			}
			br.Discard(2)
			cw.WriteString("\r\n")
			if rh.stream {
				if err := cw.Flush(); err != nil {
					return err
				}
			}
		}
	case untilClose:
		for {
			if _, err := br.Peek(1); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if err := copyN(cw, br, int64(br.Buffered()), rh.stream); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyN copies n bytes straight out of br's buffer into w.
func copyN(w *bufio.Writer, br *bufio.Reader, n int64, flush bool) error {
	for n > 0 {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		b, _ := br.Peek(int(min(n, int64(br.Buffered()))))
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("%w: %w", errWriteSide, err)
		}
		br.Discard(len(b))
		n -= int64(len(b))
		if flush {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("%w: %w", errWriteSide, err)
			}
		}
	}
	return nil
}

// peerIP is the address part of a connection's remote address.
func peerIP(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
