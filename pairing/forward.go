package pairing

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// hopHeaders are removed from what is forwarded either way (RFC 9110
// section 7.6.1), as httputil.ReverseProxy does.
var hopHeaders = [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

var errUnaskedUpgrade = errors.New("instance switched protocols on a request that asked for no upgrade")

// canForward reports whether forward can carry r: a plain request (no
// upgrade) to a base URL without a path or query of its own, with a query
// httputil.ReverseProxy would forward unchanged. The rest goes through the
// ReverseProxy.
func canForward(r *http.Request, target *url.URL) bool {
	if target.Path != "" || target.RawQuery != "" || len(r.Header["Upgrade"]) > 0 || len(r.Header["Te"]) > 0 {
		return false
	}
	return forwardableQuery(r.URL.RawQuery)
}

// forwardableQuery reports whether httputil.ReverseProxy would forward the
// raw query q unchanged: no ';' and every '%' a valid escape.
func forwardableQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// forward is the proxy's hot path: what the ReverseProxy with its Rewrite
// hook does for a plain request, without cloning the request twice, copying
// every header or setting up a per-request client trace. The inbound request
// is not used after this, so its header map is forwarded in place: hop-by-hop
// fields removed (the identity header is gone already), X-Forwarded-* set,
// Host kept.
// Informational (1xx) responses are not relayed.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, user string, target *url.URL) {
	out := new(http.Request)
	*out = *r
	out.URL = &url.URL{Scheme: target.Scheme, Host: target.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	out.RequestURI = ""
	out.Close = false
	if r.ContentLength == 0 {
		out.Body = nil
	}
	hd := out.Header
	if hd == nil {
		hd = http.Header{}
		out.Header = hd
	}
	removeHopByHop(hd) // ServeHTTP already removed the identity header
	delete(hd, "Forwarded")
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := hd["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		hd["X-Forwarded-For"] = []string{ip}
	} else {
		delete(hd, "X-Forwarded-For")
	}
	hd["X-Forwarded-Host"] = []string{r.Host}
	if r.TLS == nil {
		hd["X-Forwarded-Proto"] = []string{"http"}
	} else {
		hd["X-Forwarded-Proto"] = []string{"https"}
	}
	if _, ok := hd["User-Agent"]; !ok {
		hd["User-Agent"] = []string{""} // none, rather than Go's
	}

	res, err := h.transport.RoundTrip(out)
	if err != nil {
		h.proxyError(w, r, user, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols { // to a request that asked for no upgrade
		res.Body.Close()
		h.proxyError(w, r, user, errUnaskedUpgrade)
		return
	}
	removeHopByHop(res.Header)
	dst := w.Header()
	for k, vv := range res.Header {
		dst[k] = vv
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(res.StatusCode)
	stream := isStream(res.Header.Get("Content-Type"))
	if stream {
		// The browser opens the stream on its head: it must not wait in a
		// buffer for the first event.
		http.NewResponseController(w).Flush()
	}
	if err := h.copyBody(w, res, stream); err != nil {
		res.Body.Close()
		// Headers are gone: all that is left is to cut the response short.
		panic(http.ErrAbortHandler)
	}
	res.Body.Close() // populates res.Trailer
	if len(res.Trailer) > 0 {
		http.NewResponseController(w).Flush() // chunked, so trailers can follow
		for k, vv := range res.Trailer {
			if len(res.Trailer) != announced {
				k = http.TrailerPrefix + k
			}
			dst[k] = append(dst[k], vv...)
		}
	}
}

// copyBody copies the response body with a pooled buffer, flushing after
// each write only for streams.
func (h *Handler) copyBody(w http.ResponseWriter, res *http.Response, stream bool) error {
	if res.Body == http.NoBody {
		return nil
	}
	buf := h.buffers.Get()
	defer h.buffers.Put(buf)
	var rc *http.ResponseController
	if stream {
		rc = http.NewResponseController(w)
	}
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if rc != nil {
				if err := rc.Flush(); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

func removeHopByHop(hd http.Header) {
	for _, f := range hd["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = strings.TrimSpace(sf); sf != "" {
				hd.Del(sf)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(hd, k)
	}
}
