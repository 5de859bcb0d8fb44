package pairing

import (
	"bufio"
	"mime"
	"net"
	"net/http"
	"strings"
)

// streamOnlyFlusher is the ResponseWriter the reverse proxy writes to.
// httputil.ReverseProxy flushes after every write of a response without a
// Content-Length (a chunked page or asset), whatever FlushInterval says, and
// starts a timer goroutine per response to flush the headers alone: an extra
// write syscall or more per response on the hot path. Only responses that are
// meant to trickle (event streams, NDJSON) need that; the rest is flushed by
// net/http when its buffer fills and when the handler returns.
type streamOnlyFlusher struct{ http.ResponseWriter }

// FlushError is what http.ResponseController.Flush calls first.
func (w streamOnlyFlusher) FlushError() error {
	if !isStream(w.Header().Get("Content-Type")) {
		return nil
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack serves WebSocket upgrades (ResponseController.Hijack).
func (w streamOnlyFlusher) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets ResponseController reach deadlines and the rest.
func (w streamOnlyFlusher) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func isStream(contentType string) bool {
	// Only these two media types stream; a type without their distinctive
	// parts needs no parsing (this runs for every response).
	if !containsFold(contentType, "event-stream") && !containsFold(contentType, "ndjson") {
		return false
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "text/event-stream" || mt == "application/x-ndjson"
}

// containsFold reports whether s contains sub, ignoring ASCII case. sub is
// lower case and starts with a letter: only where s has that letter (either
// case) is the rest compared.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i]|0x20 == sub[0] && strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
