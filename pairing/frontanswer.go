package pairing

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// bufferedResponse collects what the Handler writes for a pairing or a
// refusal: a few headers and a short body.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

// answer lets the Handler pair or refuse r as its plan says, and sends what
// it wrote. It reports whether the connection may carry another request.
func (fc *fastConn) answer(r *http.Request, p plan) bool {
	w := &bufferedResponse{header: http.Header{}}
	fc.f.h.answer(w, r, p)
	if r.Context().Err() != nil {
		return false // shutting down
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	cw := fc.bw
	cw.WriteString("HTTP/1.1 ")
	cw.WriteString(strconv.Itoa(w.status))
	cw.WriteByte(' ')
	cw.WriteString(http.StatusText(w.status))
	cw.WriteString("\r\n")
	w.header.Del("Content-Length")
	w.header.Del("Transfer-Encoding")
	w.header.Set("Content-Length", strconv.Itoa(w.body.Len()))
	if _, ok := w.header["Date"]; !ok {
		w.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	last := fc.f.closed.Load() // shutting down: say so, and close after it
	if last {
		w.header.Set("Connection", "close")
	}
	for _, k := range slices.Sorted(maps.Keys(w.header)) {
		for _, v := range w.header[k] {
			if !safeField(k) || !safeField(v) {
				continue
			}
			writeField(cw, k, v)
		}
	}
	cw.WriteString("\r\n")
	if r.Method != http.MethodHead {
		cw.Write(w.body.Bytes())
	}
	return cw.Flush() == nil && !last
}

// badGateway answers 502 as forward does when nothing of the instance's
// response was relayed; the client connection stays usable.
// A request body not read yet leaves the connection out of step: the answer
// then says Connection: close, and the connection is closed after it.
func (fc *fastConn) badGateway(hd *fastHead, p plan, err error, unreadBody bool) bool {
	cw := fc.bw
	fc.f.h.log.Warn("proxy to instance failed", "user", p.in.User, "path", hd.path, "err", err)
	const body = "your t3 instance is not answering; try again in a moment\n"
	cw.WriteString("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"X-Content-Type-Options: nosniff\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	if unreadBody {
		cw.WriteString("Connection: close\r\n")
	}
	cw.WriteString("\r\n")
	if hd.method != "HEAD" {
		cw.WriteString(body)
	}
	if err := cw.Flush(); err != nil || unreadBody {
		fc.linger()
		return false
	}
	return true
}

// earlyAnswerWait bounds the wait for the answer of an instance that
// stopped reading a request body: an answer it sent is already on its way.
const earlyAnswerWait = time.Second

// earlyAnswer is the end of a request whose body the instance stopped
// taking (an upload over its limit, typically answered 413 before the body
// is read, and the connection closed). Its answer, when it sent one, is
// relayed rather than cutting the browser off; else a 502. Either way the
// client connection closes after it: the rest of the body was never read.
func (fc *fastConn) earlyAnswer(c *upstreamConn, hd *fastHead, p plan, werr error) bool {
	defer c.nc.Close()
	c.nc.SetReadDeadline(time.Now().Add(earlyAnswerWait))
	rh, err := fc.readResponseHead(c.br, false, true)
	if err != nil {
		return fc.badGateway(hd, p, errors.Join(werr, err), true)
	}
	if err := fc.relayBody(c.br, rh); err == nil {
		fc.bw.Flush()
	}
	fc.linger()
	return false
}

// lingerTime is how long linger reads what the client still sends.
const lingerTime = 500 * time.Millisecond

// linger ends a client connection whose request body was not all read:
// it closes the write side (the answer is complete), then reads and drops
// what the client still sends for lingerTime before the close. Closing with
// bytes unread would reset the connection, and a browser still sending its
// body could lose the answer with it; net/http's server does the same.
func (fc *fastConn) linger() {
	if c, ok := fc.nc.(interface{ CloseWrite() error }); ok {
		c.CloseWrite()
	}
	fc.nc.SetReadDeadline(time.Now().Add(lingerTime))
	io.Copy(io.Discard, fc.br)
}
