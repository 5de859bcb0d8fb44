package pairing_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
	"github.com/t3fleet/t3fleet/sessionprobe"
)

// fakeInstance is a small stand-in for one t3 server, enough to drive the
// dispatch: an exchange under one name, a session check, a WebSocket echo at
// /ws and an HTML page everywhere else. Failure switches are plain fields.
type fakeInstance struct {
	srv  *httptest.Server
	name string

	mu           sync.Mutex
	exchangePath string // which exchange name this "build" answers
	cookieName   string
	noSetCookie  bool   // t3 issue #7756
	session      string // "" = honest; else "500", "garbage", "nofield", "hang", "drop", "false"
	creds        map[string]bool
	sessions     map[string]bool
	lastHeader   http.Header    // of the last request
	hits         map[string]int // requests per path
}

func newFakeInstance(t testing.TB, name, exchangePath, cookieName string) *fakeInstance {
	t.Helper()
	f := &fakeInstance{name: name, exchangePath: exchangePath, cookieName: cookieName,
		creds: map[string]bool{}, sessions: map[string]bool{}, hits: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeInstance) set(fn func(f *fakeInstance)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// wipe forgets every session, as migration 31 does.
func (f *fakeInstance) wipe() { f.set(func(f *fakeInstance) { clear(f.sessions) }) }

func (f *fakeInstance) hitCount(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func (f *fakeInstance) lastHeaders() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastHeader
}

func (f *fakeInstance) mint() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	c := strings.ToUpper(hex.EncodeToString(b))
	f.set(func(f *fakeInstance) { f.creds[c] = true })
	return c
}

func (f *fakeInstance) authed(r *http.Request) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range sessionprobe.SessionCookies(r) {
		if f.sessions[c.Value] {
			return true
		}
	}
	return false
}

func (f *fakeInstance) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	f.lastHeader = r.Header.Clone()
	ep, mode := f.exchangePath, f.session
	f.mu.Unlock()
	switch {
	case r.URL.Path == pairing.EndpointBrowserSession || r.URL.Path == pairing.EndpointBootstrap:
		if r.URL.Path != ep || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var body struct{ Credential string }
		if json.NewDecoder(r.Body).Decode(&body) != nil || body.Credential == "" {
			http.Error(w, `{"error":"Invalid bootstrap payload."}`, http.StatusBadRequest)
			return
		}
		tok := f.mint() // a fresh random value serves as the session token
		f.mu.Lock()
		ok := f.creds[body.Credential]
		delete(f.creds, body.Credential)
		if ok {
			f.sessions[tok] = true
		}
		name, noCookie := f.cookieName, f.noSetCookie
		f.mu.Unlock()
		if !ok {
			http.Error(w, `{"error":"Invalid bootstrap credential."}`, http.StatusUnauthorized)
			return
		}
		if !noCookie {
			http.SetCookie(w, &http.Cookie{Name: name, Value: tok, Path: "/", HttpOnly: true,
				SameSite: http.SameSiteLaxMode, Expires: time.Now().Add(30 * 24 * time.Hour)})
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"authenticated":true,"sessionMethod":"browser-session-cookie"}`)
	case r.URL.Path == sessionprobe.SessionPath:
		switch mode {
		case "500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "garbage":
			fmt.Fprint(w, "<html>not json")
		case "nofield":
			fmt.Fprint(w, `{"auth":{}}`)
		case "hang":
			<-r.Context().Done()
		case "drop":
			if hj, ok := w.(http.Hijacker); ok {
				c, _, _ := hj.Hijack()
				c.Close()
			}
		case "false":
			fmt.Fprint(w, `{"authenticated":false,"auth":{"sessionCookieName":"`+f.cookieName+`"}}`)
		default:
			fmt.Fprintf(w, `{"authenticated":%t,"auth":{"sessionCookieName":%q}}`, f.authed(r), f.cookieName)
		}
	case r.URL.Path == "/ws":
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		ctx := context.Background()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if string(msg) == "bye" {
				c.Close(websocket.StatusNormalClosure, "server hangs up")
				return
			}
			if err := c.Write(ctx, typ, append([]byte(f.name+":"), msg...)); err != nil {
				return
			}
		}
	case r.URL.Path == "/api/data":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"instance":%q,"authenticated":%t}`, f.name, f.authed(r))
	default:
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<!doctype html><title>t3 %s</title>instance %s path %s", f.name, f.name, r.URL.RequestURI())
	}
}

// fakeMinter mints at the fake instance registered for the OS user.
type fakeMinter struct {
	mu        sync.Mutex
	instances map[string]*fakeInstance
	calls     atomic.Int64
	gate      chan struct{} // when set, Mint waits for it to close
	err       error
}

func (m *fakeMinter) Mint(ctx context.Context, in t3fleet.Instance) (pairing.Credential, error) {
	m.calls.Add(1)
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return pairing.Credential{}, ctx.Err()
		}
	}
	if m.err != nil {
		return pairing.Credential{}, m.err
	}
	m.mu.Lock()
	f := m.instances[in.OSUser]
	m.mu.Unlock()
	if f == nil {
		return pairing.Credential{}, errors.New("no such instance")
	}
	return pairing.Credential{ID: "p", Secret: f.mint(), ExpiresAt: time.Now().Add(5 * time.Minute)}, nil
}

// mapRouter routes from a fixed map.
type mapRouter map[string]t3fleet.Instance

func (m mapRouter) Route(u string) (t3fleet.Instance, bool) { in, ok := m[u]; return in, ok }
