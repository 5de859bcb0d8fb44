package pairing_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/t3fleet/t3fleet/pairing"
)

// twoUserFront is a Front routing ana and bob to instances of their own,
// each answering every path with its user's name.
func twoUserFront(t *testing.T, opts pairing.FrontOptions) (url string, ana, bob *scriptedInstance) {
	t.Helper()
	answers := func(name string) map[string]string {
		out := map[string]string{}
		for _, p := range []string{"/a", "/b", "/c", "/d", "/e", "/f", "/g", "/p", "/q"} {
			out[p] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(name)) + "\r\n\r\n" + name
		}
		return out
	}
	ana = newScriptedInstance(t, answers("ana"))
	bob = newScriptedInstance(t, answers("bob"))
	h := pairing.NewHandler(mapRouter{
		"ana": {User: "ana", OSUser: "ana", BaseURL: ana.URL()},
		"bob": {User: "bob", OSUser: "bob", BaseURL: bob.URL()},
	}, nil, pairing.HandlerOptions{Prober: cookieProber{}})
	return startFront(t, h, opts), ana, bob
}

func seenPaths(s *scriptedInstance) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.seen {
		out = append(out, r.URL.Path)
	}
	return out
}

// The proxy in front reuses one connection for everyone's requests. On one
// connection, requests for ana and bob (on the fast path, then handed to
// net/http by a chunked body), bodies holding another user's request head,
// and requests naming nobody after one that named someone each reach the
// instance of the user named in their own head, or none.
func TestOneConnectionCarriesManyUsersApart(t *testing.T) {
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			url, ana, bob := twoUserFront(t, pairing.FrontOptions{DisableFast: m.disableFast})
			head := func(method, path, user, extra string) string {
				s := method + " " + path + " HTTP/1.1\r\nHost: t3.example\r\nCookie: t3_session=live\r\nSec-Fetch-Dest: empty\r\n"
				if user != "" {
					s += "X-Authentik-Username: " + user + "\r\n"
				}
				if extra != "" {
					s += extra + "\r\n"
				}
				return s + "\r\n"
			}
			bobHead := head("GET", "/q", "bob", "")
			chunk := strconv.FormatInt(int64(len(bobHead)), 16) + "\r\n" + bobHead + "\r\n0\r\n\r\n"
			raw := head("GET", "/a", "ana", "") +
				head("GET", "/b", "bob", "") +
				head("POST", "/p", "ana", "Content-Length: "+strconv.Itoa(len(bobHead))) + bobHead +
				head("GET", "/c", "", "") +
				head("GET", "/d", "bob", "") +
				head("POST", "/p", "ana", "Transfer-Encoding: chunked") + chunk +
				head("GET", "/e", "bob", "") +
				head("GET", "/f", "", "") +
				head("GET", "/g", "ana", "")
			want := []struct {
				status int
				body   string
			}{{200, "ana"}, {200, "bob"}, {200, "ana"}, {401, ""}, {200, "bob"}, {200, "ana"}, {200, "bob"}, {401, ""}, {200, "ana"}}
			methods := make([]string, len(want))
			for i := range methods {
				methods[i] = http.MethodGet
			}
			for i, r := range rawExchange(t, url, raw, methods...) {
				assert.Equal(t, want[i].status, r.StatusCode, "response %d", i+1)
				if want[i].body != "" {
					assert.Equal(t, want[i].body, body(t, r), "response %d", i+1)
				}
			}
			assert.Equal(t, []string{"/a", "/p", "/p", "/g"}, seenPaths(ana))
			assert.Equal(t, []string{"/b", "/d", "/e"}, seenPaths(bob))
			ana.mu.Lock()
			assert.Equal(t, []string{"", bobHead, bobHead, ""}, ana.body, "a head in a body stays a body")
			for _, r := range ana.seen {
				assert.Empty(t, r.Header.Values(pairing.DefaultUserHeader))
			}
			ana.mu.Unlock()
		})
	}
}
