package pairing_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/pairing"
)

// exchangeServer answers the exchange names listed in routes with status
// and, on 200, the cookies named in setCookies; every other path is 404.
func exchangeServer(t *testing.T, routes map[string]int, setCookies ...string) (*httptest.Server, *[]string) {
	t.Helper()
	var hits []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, r.URL.Path)
		st, ok := routes[r.URL.Path]
		if !ok || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		if st == http.StatusOK {
			for _, n := range setCookies {
				http.SetCookie(w, &http.Cookie{Name: n, Value: "tok-" + n, Path: "/", HttpOnly: true})
			}
		}
		w.WriteHeader(st)
		_, _ = w.Write([]byte(`{"error":"nope"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestExchange(t *testing.T) {
	const bs, bt = pairing.EndpointBrowserSession, pairing.EndpointBootstrap
	tests := []struct {
		name         string
		routes       map[string]int
		cookies      []string
		hint         string
		wantEndpoint string
		wantFallback bool
		wantCookies  []string
		wantStatus   int // on error
		wantNoCookie bool
		wantHits     []string
	}{
		{"era B+ browser-session", map[string]int{bs: 200}, []string{"t3_session"}, "", bs, false, []string{"t3_session"}, 0, false, []string{bs}},
		{"era A falls back on 404", map[string]int{bt: 200}, []string{"t3_session_3801_abcdefabcdef"}, "", bt, true, []string{"t3_session_3801_abcdefabcdef"}, 0, false, []string{bs, bt}},
		{"hint tries bootstrap first", map[string]int{bt: 200}, []string{"t3_session"}, bt, bt, true, []string{"t3_session"}, 0, false, []string{bt}},
		{"stale hint after upgrade", map[string]int{bs: 200}, []string{"t3_session"}, bt, bs, false, []string{"t3_session"}, 0, false, []string{bt, bs}},
		{"only t3 session cookies relayed", map[string]int{bs: 200}, []string{"other", "t3_session_abc123abc123"}, "", bs, false, []string{"t3_session_abc123abc123"}, 0, false, []string{bs}},
		{"200 without Set-Cookie fails", map[string]int{bs: 200}, nil, "", bs, false, nil, 200, true, []string{bs}},
		{"200 with only foreign cookie fails", map[string]int{bs: 200}, []string{"sid"}, "", bs, false, nil, 200, true, []string{bs}},
		{"401 is a verdict, no fallback", map[string]int{bs: 401, bt: 200}, []string{"t3_session"}, "", bs, false, nil, 401, false, []string{bs}},
		{"500 is a verdict", map[string]int{bs: 500}, nil, "", bs, false, nil, 500, false, []string{bs}},
		{"both 404", map[string]int{}, nil, "", bt, true, nil, 404, false, []string{bs, bt}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, hits := exchangeServer(t, tc.routes, tc.cookies...)
			s, err := pairing.Exchange(context.Background(), srv.Client(), srv.URL, "ABCDEFGHJKLM", tc.hint)
			assert.Equal(t, tc.wantHits, *hits)
			if tc.wantStatus != 0 {
				var xe *pairing.ExchangeError
				require.ErrorAs(t, err, &xe)
				assert.Equal(t, tc.wantStatus, xe.Status)
				assert.Equal(t, tc.wantEndpoint, xe.Endpoint)
				assert.Equal(t, tc.wantNoCookie, errors.Is(err, pairing.ErrNoSessionCookie))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantEndpoint, s.Endpoint)
			assert.Equal(t, tc.wantFallback, s.Fallback)
			var names []string
			for _, c := range s.Cookies {
				names = append(names, c.Name)
			}
			assert.Equal(t, tc.wantCookies, names)
		})
	}
}

func TestExchangeUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := pairing.Exchange(context.Background(), nil, url, "X", "")
	var xe *pairing.ExchangeError
	require.ErrorAs(t, err, &xe)
	assert.Equal(t, 0, xe.Status)
	assert.Equal(t, pairing.EndpointBrowserSession, xe.Endpoint)
}
