package t3test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"
)

// Session cookie facts (T3-CONTRACT.md §1).
const (
	// LegacyCookieName is what older builds bound to a remote-reachable host
	// use, and what per-environment builds still accept.
	LegacyCookieName = "t3_session"
	// DefaultSessionLifetime is fixed: no sliding expiry.
	DefaultSessionLifetime = 30 * 24 * time.Hour
	// SessionMethod is how every browser session here was issued.
	SessionMethod = "browser-session-cookie"
)

// sessionClaims is the signed part of a session cookie.
type sessionClaims struct {
	V      int      `json:"v"`
	Kind   string   `json:"kind"`
	SID    string   `json:"sid"`
	Sub    string   `json:"sub"`
	Role   string   `json:"role,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
	Method string   `json:"method"`
	IAT    int64    `json:"iat"`
	EXP    int64    `json:"exp"`
}

var b64 = base64.RawURLEncoding

// signToken renders base64url(JSON claims).base64url(HMAC-SHA256).
func signToken(key []byte, c sessionClaims) string {
	body, _ := json.Marshal(c)
	payload := b64.EncodeToString(body)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(payload))
	return payload + "." + b64.EncodeToString(mac.Sum(nil))
}

var errBadToken = errors.New("bad session token")

// verifyToken checks the signature and the claims' shape and expiry.
func verifyToken(key []byte, token string, now time.Time) (sessionClaims, error) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok {
		return sessionClaims{}, errBadToken
	}
	got, err := b64.DecodeString(sig)
	if err != nil {
		return sessionClaims{}, errBadToken
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(payload))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return sessionClaims{}, errBadToken
	}
	body, err := b64.DecodeString(payload)
	if err != nil {
		return sessionClaims{}, errBadToken
	}
	var c sessionClaims
	if err := json.Unmarshal(body, &c); err != nil || c.Kind != "session" || c.SID == "" {
		return sessionClaims{}, errBadToken
	}
	if now.UnixMilli() >= c.EXP {
		return sessionClaims{}, errBadToken
	}
	return c, nil
}

// RemoteReachable reports whether a bind host counts as remote-reachable for
// the cookie-name rule: 0.0.0.0, :: and any non-loopback address or name do;
// localhost, 127.* and ::1 do not.
func RemoteReachable(host string) bool {
	h := strings.Trim(host, "[]")
	if h == "" || h == "0.0.0.0" || h == "::" {
		return true
	}
	if strings.EqualFold(h, "localhost") {
		return false
	}
	if ip := net.ParseIP(h); ip != nil {
		return !ip.IsLoopback()
	}
	return true
}

// CookieNameFor is the session cookie name a build of era e picks (T3-CONTRACT.md §1):
// desktop mode t3_session_<port>; loopback t3_session_<port>_<12 hex of
// sha256(absolute state dir)>; remote-reachable t3_session for eras A-C and
// t3_session_<12 hex of sha256(environmentId)> from era D on.
func CookieNameFor(e Era, remote, desktop bool, port int, absStateDir, environmentID string) string {
	switch {
	case desktop:
		return LegacyCookieName + "_" + strconv.Itoa(port)
	case !remote:
		return LegacyCookieName + "_" + strconv.Itoa(port) + "_" + hash12(absStateDir)
	case e.PerEnvironmentCookie():
		return LegacyCookieName + "_" + hash12(environmentID)
	default:
		return LegacyCookieName
	}
}

func hash12(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}
