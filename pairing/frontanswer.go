package pairing

import (
	"bytes"
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
	return cw.Flush() == nil
}
