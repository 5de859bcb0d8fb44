package sessionprobe

import (
	"net/http"
	"strings"
)

// SessionCookieName is the legacy name of t3's session cookie. Newer builds
// append a suffix (t3_session_<port>_<hash>, t3_session_<hash>); see
// IsSessionCookieName.
const SessionCookieName = "t3_session"

// IsSessionCookieName reports whether name is a t3 session cookie: exactly
// "t3_session" or any name starting with "t3_session_". The name is not fixed
// across t3 builds, so nothing should hard-code one.
func IsSessionCookieName(name string) bool {
	return name == SessionCookieName ||
		(len(name) > len(SessionCookieName)+1 && strings.HasPrefix(name, SessionCookieName+"_"))
}

// SessionCookies returns the t3 session cookies the request carries, in the
// order they were sent. It returns nil when there are none.
func SessionCookies(r *http.Request) []*http.Cookie {
	all := r.Cookies()
	out := all[:0] // filtered in place: the slice is ours
	for _, c := range all {
		if IsSessionCookieName(c.Name) && c.Value != "" {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// IsWebSocket reports whether r asks for a WebSocket upgrade.
func IsWebSocket(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") &&
		strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket")
}

// IsPageLoad reports whether r is a browser's top-level page load: a GET that
// is not a WebSocket upgrade nor an XHR, with Sec-Fetch-Dest: document, or,
// when the browser sends no Sec-Fetch-Dest, an Accept header containing
// text/html. Only a page load may be answered with a redirect.
func IsPageLoad(r *http.Request) bool {
	if r.Method != http.MethodGet || IsWebSocket(r) {
		return false
	}
	if strings.EqualFold(r.Header.Get("X-Requested-With"), "XMLHttpRequest") {
		return false
	}
	if dest := r.Header.Get("Sec-Fetch-Dest"); dest != "" {
		return strings.EqualFold(strings.TrimSpace(dest), "document")
	}
	for _, a := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(a), "text/html") {
			return true
		}
	}
	return false
}

// IsSubresource reports whether r is definitely not a top-level navigation:
// a non-GET, a WebSocket upgrade, an XHR, or a request whose Sec-Fetch-Dest
// names something other than a document. A request that says nothing
// (curl, an old browser) is not a subresource.
func IsSubresource(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead || IsWebSocket(r) {
		return true
	}
	if strings.EqualFold(r.Header.Get("X-Requested-With"), "XMLHttpRequest") {
		return true
	}
	dest := strings.TrimSpace(r.Header.Get("Sec-Fetch-Dest"))
	return dest != "" && !strings.EqualFold(dest, "document")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
