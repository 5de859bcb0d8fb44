package pairing_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
)

// TestProxyForwarding pins what reaches the instance and what comes back on
// the proxy's plain path: hop-by-hop fields and the identity header gone,
// X-Forwarded-* set, Host kept, query unchanged, trailers relayed.
func TestProxyForwarding(t *testing.T) {
	var seen *http.Request
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Clone(r.Context())
		switch r.URL.Path {
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		default:
			w.Header().Set("Connection", "X-Hop")
			w.Header().Set("X-Hop", "drop me")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("X-Kept", "yes")
			io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(inst.Close)
	router := mapRouter{"emil": t3fleet.Instance{User: "emil", OSUser: "emil", BaseURL: inst.URL}}
	h := pairing.NewHandler(router, pairing.NewPairer(&fakeMinter{}, pairing.PairerOptions{}), pairing.HandlerOptions{})
	cases := []struct {
		name, path  string
		header      http.Header
		wantHeader  map[string]string // on the instance's side; "" = absent
		wantResp    map[string]string // on the browser's side
		wantBody    string
		wantTrailer string
	}{
		{name: "plain asset", path: "/assets/app.js?v=1&x=%2F",
			header: http.Header{"Connection": {"X-Private"}, "X-Private": {"secret"}, "X-Forwarded-For": {"10.0.0.1"},
				"Forwarded": {"for=evil"}, "Proxy-Authorization": {"Basic x"}},
			wantHeader: map[string]string{"X-Private": "", "Connection": "", "Forwarded": "", "Proxy-Authorization": "",
				"X-Authentik-Username": "", "X-Forwarded-For": "10.0.0.1, 127.0.0.1", "X-Forwarded-Proto": "http",
				"User-Agent": "Go-http-client/1.1"},
			wantResp: map[string]string{"X-Hop": "", "Keep-Alive": "", "X-Kept": "yes"},
			wantBody: "ok"},
		{name: "plain asset, nothing hop-by-hop", path: "/assets/app.js?v=1&x=%2F",
			header: http.Header{"X-Forwarded-For": {"10.0.0.1", "10.0.0.2"}, "X-Forwarded-Host": {"evil.example"},
				"X-Forwarded-Proto": {"https"}, "Forwarded": {"for=evil"}},
			wantHeader: map[string]string{"Forwarded": "", "X-Authentik-Username": "",
				"X-Forwarded-For": "10.0.0.1, 10.0.0.2, 127.0.0.1", "X-Forwarded-Proto": "http"},
			wantResp: map[string]string{"X-Hop": "", "Keep-Alive": "", "X-Kept": "yes"},
			wantBody: "ok"},
		{name: "no user agent stays none", path: "/x", header: http.Header{"User-Agent": {""}},
			wantHeader: map[string]string{"User-Agent": ""}, wantBody: "ok"},
		{name: "trailers", path: "/trailer", wantBody: "body", wantTrailer: "42"},
	}
	for _, mode := range serveModes {
		url := startFront(t, h, pairing.FrontOptions{DisableFast: mode.disableFast})
		for _, tc := range cases {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				seen = nil
				req, err := http.NewRequest("GET", url+tc.path, nil)
				require.NoError(t, err)
				req.Host = "t3.example"
				for k, v := range tc.header {
					req.Header[k] = v
				}
				req.Header.Set("X-authentik-username", "emil")
				req.Header.Set("Cookie", "t3_session=live")
				req.Header.Set("Sec-Fetch-Dest", "script")
				// A connection of its own: one the Front handed to net/http
				// (the first case's Connection field) stays there.
				tr := &http.Transport{}
				defer tr.CloseIdleConnections()
				resp, err := (&http.Client{Transport: tr}).Do(req)
				require.NoError(t, err)
				body, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
				assert.Equal(t, tc.wantBody, string(body))
				require.NotNil(t, seen)
				assert.Equal(t, "t3.example", seen.Host)
				assert.Equal(t, "t3.example", seen.Header.Get("X-Forwarded-Host"))
				assert.Equal(t, tc.path, seen.URL.RequestURI())
				for k, v := range tc.wantHeader {
					assert.Equal(t, v, seen.Header.Get(k), "upstream %s", k)
				}
				for k, v := range tc.wantResp {
					assert.Equal(t, v, resp.Header.Get(k), "browser %s", k)
				}
				if tc.wantTrailer != "" {
					assert.Equal(t, tc.wantTrailer, resp.Trailer.Get("X-Sum"))
				}
				assert.Empty(t, seen.Header.Values(pairing.DefaultUserHeader), "the identity header never reaches the instance")
			})
		}
	}
}

// The identity header declared as a trailer (its value would follow the
// body, past every check, and reach the instance with it) is refused like
// a second copy of the header.
func TestIdentityHeaderAsATrailerIsRefused(t *testing.T) {
	inst := newScriptedInstance(t, nil)
	for _, m := range serveModes {
		t.Run(m.name, func(t *testing.T) {
			ft := newFrontUnderTest(t, inst.URL(), pairing.FrontOptions{DisableFast: m.disableFast}, nil)
			for _, declared := range []string{"X-Authentik-Username", "x_authentik_username"} {
				raw := "POST /api/x HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: ana\r\nCookie: t3_session=live\r\n" +
					"Trailer: " + declared + "\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n" + declared + ": root\r\n\r\n"
				resps := rawExchange(t, ft.url, raw, "POST")
				require.Equal(t, http.StatusBadRequest, resps[0].StatusCode, declared)
			}
			require.Nil(t, inst.last(), "nothing reached the instance")
		})
	}
}
