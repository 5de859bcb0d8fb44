package sessionprobe_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/t3fleet/t3fleet/sessionprobe"
)

func TestIsSessionCookieName(t *testing.T) {
	for name, want := range map[string]bool{
		"t3_session":                   true,
		"t3_session_3801":              true,
		"t3_session_3801_0123456789ab": true,
		"t3_session_fedcba987654":      true,
		"t3_session_":                  false,
		"t3_sessionx":                  false,
		"T3_SESSION":                   false,
		"x_t3_session":                 false,
		"authentik_session":            false,
		"":                             false,
	} {
		assert.Equal(t, want, sessionprobe.IsSessionCookieName(name), name)
	}
}

func TestSessionCookies(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "a=1; t3_session=x; t3_session_3801=y; t3_session_empty=; other=2")
	var names []string
	for _, c := range sessionprobe.SessionCookies(r) {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{"t3_session", "t3_session_3801"}, names)
	assert.Nil(t, sessionprobe.SessionCookies(httptest.NewRequest(http.MethodGet, "/", nil)))
}

func TestIsPageLoad(t *testing.T) {
	ws := map[string]string{"Connection": "keep-alive, Upgrade", "Upgrade": "websocket", "Sec-Websocket-Version": "13"}
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		page    bool
		subres  bool
	}{
		{"chromium navigation", "GET", map[string]string{"Sec-Fetch-Dest": "document", "Accept": "text/html,application/xhtml+xml"}, true, false},
		{"navigation, no Accept", "GET", map[string]string{"Sec-Fetch-Dest": "document"}, true, false},
		{"old browser navigation", "GET", map[string]string{"Accept": "text/html,*/*;q=0.8"}, true, false},
		{"fetch()", "GET", map[string]string{"Sec-Fetch-Dest": "empty", "Accept": "*/*"}, false, true},
		{"fetch() asking for html", "GET", map[string]string{"Sec-Fetch-Dest": "empty", "Accept": "text/html"}, false, true},
		{"script", "GET", map[string]string{"Sec-Fetch-Dest": "script", "Accept": "*/*"}, false, true},
		{"iframe", "GET", map[string]string{"Sec-Fetch-Dest": "iframe", "Accept": "text/html"}, false, true},
		{"jQuery XHR", "GET", map[string]string{"X-Requested-With": "XMLHttpRequest", "Accept": "text/html"}, false, true},
		{"websocket (sends neither)", "GET", ws, false, true},
		{"websocket with html accept", "GET", map[string]string{"Connection": "Upgrade", "Upgrade": "WebSocket", "Accept": "text/html"}, false, true},
		{"POST form", "POST", map[string]string{"Sec-Fetch-Dest": "document", "Accept": "text/html"}, false, true},
		{"HEAD", "HEAD", map[string]string{"Accept": "text/html"}, false, false},
		{"curl", "GET", map[string]string{"Accept": "*/*"}, false, false},
		{"bare", "GET", nil, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			assert.Equal(t, tc.page, sessionprobe.IsPageLoad(r), "IsPageLoad")
			assert.Equal(t, tc.subres, sessionprobe.IsSubresource(r), "IsSubresource")
		})
	}
}
