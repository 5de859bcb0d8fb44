package t3test

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

//go:embed index.html
var indexHTML string

var indexTmpl = template.Must(template.New("index").Parse(indexHTML))

// Route paths a build may serve (T3-CONTRACT.md §1).
const (
	PathEnvironment    = "/.well-known/t3/environment"
	PathSession        = "/api/auth/session"
	PathBootstrap      = "/api/auth/bootstrap"       // era A only
	PathBrowserSession = "/api/auth/browser-session" // era B on
	PathWebSocket      = "/ws"
)

func (s *Server) routes() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.enter() {
			if deafConn(r.Context()) {
				panic(http.ErrAbortHandler) // never answered, as below
			}
			http.Error(w, "server closing", http.StatusServiceUnavailable)
			return
		}
		defer s.handlers.Done()
		if deafConn(r.Context()) || s.currentFaults().Wedged {
			select { // accepted, never answered
			case <-s.closing:
			case <-r.Context().Done():
			}
			// Not even on the way out: a handler that returns gets net/http's
			// empty 200, which a readiness check takes for an answer from an
			// instance that is exiting (t3 closes such a connection unanswered).
			panic(http.ErrAbortHandler)
		}
		switch {
		case r.URL.Path == PathEnvironment && r.Method == http.MethodGet:
			s.environment(w)
		case r.URL.Path == PathSession && r.Method == http.MethodGet:
			s.session(w, r)
		case r.URL.Path == s.Era.PairingPath() && r.Method == http.MethodPost:
			s.exchange(w, r)
		case r.URL.Path == PathWebSocket && r.Method == http.MethodGet:
			s.websocket(w, r)
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			s.index(w)
		default:
			http.NotFound(w, r)
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) environment(w http.ResponseWriter) {
	label := s.opts.User
	if label == "" {
		label = "t3test"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"environmentId": s.EnvironmentID,
		"label":         label,
		"platform":      platform(runtime.GOOS, runtime.GOARCH),
		"serverVersion": s.Version,
		// t3 names no capability for the era's differences: a client learns
		// the exchange by its 404 and the cookie's name from the session
		// check. repositoryIdentity is one t3 reports.
		"capabilities": map[string]bool{"repositoryIdentity": true},
	})
}

// platform is the environment's platform in t3's words (its contracts'
// ExecutionEnvironmentPlatform), not Go's.
func platform(goos, goarch string) map[string]string {
	os, arch := "unknown", "other"
	switch goos {
	case "linux", "darwin", "windows":
		os = goos
	}
	switch goarch {
	case "amd64":
		arch = "x64"
	case "arm64":
		arch = "arm64"
	}
	return map[string]string{"os": os, "arch": arch}
}

func (s *Server) authDescriptor() map[string]any {
	policy := "loopback-browser"
	if s.remote {
		policy = "remote-reachable"
	}
	return map[string]any{
		"policy":            policy,
		"bootstrapMethods":  []string{"one-time-token"},
		"sessionMethods":    []string{SessionMethod},
		"sessionCookieName": s.cookieName,
	}
}

// sessionFromRequest checks the one session credential t3 selects from the
// request's cookies (its selectRequestCredential): the first cookie of this
// build's name when there is one, even a dead one; only when there is none,
// for per-environment builds, the first legacy t3_session. legacy says the
// session came from the legacy cookie. err is a failure to read the
// database, which t3 answers with a 500, not with "unauthenticated".
func (s *Server) sessionFromRequest(r *http.Request) (ls liveSession, legacy, ok bool, err error) {
	c, legacy := firstCookie(r, s.cookieName), false
	if c == nil && s.Era.PerEnvironmentCookie() && s.cookieName != LegacyCookieName {
		c, legacy = firstCookie(r, LegacyCookieName), true
	}
	if c == nil {
		return liveSession{}, false, false, nil
	}
	ls, ok, err = s.lookupSession(c.Value)
	if err != nil {
		s.log.Error("Session check failed", "error", err.Error())
		return liveSession{}, false, false, err
	}
	return ls, legacy && ok, ok, nil
}

// firstCookie is the first cookie of the request named name, or nil: t3
// reads cookies into a record that keeps a name's first value.
func firstCookie(r *http.Request, name string) *http.Cookie {
	if cs := r.CookiesNamed(name); len(cs) > 0 {
		return cs[0]
	}
	return nil
}

// internalError answers 500 as t3's environment API does when its own
// store fails (failEnvironmentInternal), with reason naming the step.
func (s *Server) internalError(w http.ResponseWriter, reason string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusInternalServerError, map[string]string{"_tag": "EnvironmentAuthInternalError",
		"code": "auth_internal", "reason": reason, "traceId": newUUID()})
}

func (s *Server) grantFields(body map[string]any, g grant) {
	if s.Era.UsesScopes() {
		body["scopes"] = g.Scopes
	} else {
		body["role"] = g.Role
	}
}

func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	s.sessionChecks.Add(1)
	body := map[string]any{"authenticated": false, "auth": s.authDescriptor()}
	ls, legacy, ok, err := s.sessionFromRequest(r)
	if err != nil {
		s.internalError(w, "internal_error")
		return
	}
	if ok {
		body["authenticated"] = true
		body["sessionMethod"] = SessionMethod
		body["expiresAt"] = ls.expires
		s.grantFields(body, ls.grant)
		if legacy { // PR #8085: upgrade a legacy cookie to this build's name
			http.SetCookie(w, s.sessionCookie(ls.token, time.UnixMilli(ls.claims.EXP)))
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) sessionCookie(token string, exp time.Time) *http.Cookie {
	return &http.Cookie{Name: s.cookieName, Value: token, Path: "/", Expires: exp.UTC(),
		HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

func (s *Server) exchange(w http.ResponseWriter, r *http.Request) {
	s.exchanges.Add(1)
	eraA := s.Era == EraA
	if !eraA {
		w.Header().Set("Cache-Control", "no-store")
	}
	trace := newUUID()
	fail := func(status int, reason, aMsg string) {
		if eraA {
			writeJSON(w, status, map[string]string{"error": aMsg})
			return
		}
		tag, code := "EnvironmentAuthInvalidError", "auth_invalid"
		if status >= 500 {
			tag, code = "EnvironmentAuthInternalError", "auth_internal"
		}
		writeJSON(w, status, map[string]string{"_tag": tag, "code": code, "reason": reason, "traceId": trace})
	}
	var in struct {
		Credential string `json:"credential"`
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err := json.Unmarshal(raw, &in); err != nil || in.Credential == "" {
		if eraA {
			fail(http.StatusBadRequest, "", "Invalid bootstrap payload.")
		} else {
			fail(http.StatusUnauthorized, "missing_credential", "")
		}
		return
	}
	faults := s.currentFaults()
	if faults.PairingBroken {
		s.log.Error("Browser session issuance failed", "error", "PersistenceSqlError: injected failure (t3test Faults.PairingBroken)", "traceId", trace)
		fail(http.StatusInternalServerError, "browser_session_issuance_failed", "Failed to bootstrap session.")
		return
	}
	c, exp, err := s.issueSession(in.Credential, r.UserAgent(), r.RemoteAddr)
	switch {
	case errors.Is(err, errInvalidCredential):
		s.log.Warn("Rejected pairing credential", "traceId", trace)
		fail(http.StatusUnauthorized, "invalid_credential", "Invalid bootstrap credential.")
		return
	case err != nil:
		s.log.Error("Browser session issuance failed", "error", err.Error(), "traceId", trace)
		fail(http.StatusInternalServerError, "browser_session_issuance_failed", "Failed to bootstrap session.")
		return
	}
	if !faults.NoSetCookie {
		http.SetCookie(w, s.sessionCookie(signToken(s.key, c), exp))
	}
	body := map[string]any{"authenticated": true, "sessionMethod": SessionMethod, "expiresAt": formatTime(exp)}
	s.grantFields(body, grant{Role: c.Role, Scopes: c.Scopes})
	s.log.Info("Issued browser session", "sessionId", c.SID, "route", r.URL.Path)
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) websocket(w http.ResponseWriter, r *http.Request) {
	_, _, ok, err := s.sessionFromRequest(r)
	if err != nil {
		s.internalError(w, "internal_error")
		return
	}
	if !ok {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	s.wsOpened.Add(1)
	s.wsMu.Lock()
	select {
	case <-s.closing:
		s.wsMu.Unlock()
		_ = c.CloseNow()
		return
	default:
	}
	s.ws[c] = struct{}{}
	s.wsMu.Unlock()
	defer func() {
		s.wsMu.Lock()
		delete(s.ws, c)
		s.wsMu.Unlock()
		_ = c.CloseNow()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

func (s *Server) index(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	user := s.opts.User
	if user == "" {
		user = "t3test"
	}
	// A real t3 serves its built index.html as a static file, with a
	// Content-Length; render first so the fake does the same, not chunked.
	var page bytes.Buffer
	_ = indexTmpl.Execute(&page, map[string]string{"User": user, "Era": string(s.Era), "Version": s.Version, "PairPath": s.Era.PairingPath()})
	w.Header().Set("Content-Length", strconv.Itoa(page.Len()))
	_, _ = w.Write(page.Bytes())
}
