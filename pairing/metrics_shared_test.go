package pairing_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/pairing"
)

// Two Handlers in one process (two listeners, two identity headers) may
// share one Registerer: the second uses the first's collectors, and the
// series count both.
func TestHandlersShareARegisterer(t *testing.T) {
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pairing.EndpointBrowserSession {
			http.SetCookie(w, &http.Cookie{Name: "t3_session", Value: "tok", Path: "/"})
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(inst.Close)
	router := mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: inst.URL}}
	reg := prometheus.NewRegistry()
	pair := func(h *pairing.Handler, header string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set(header, "ana")
		req.Header.Set("Sec-Fetch-Dest", "document")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusFound, rec.Code)
	}
	newHandler := func(header string) *pairing.Handler {
		return pairing.NewHandler(router, pairing.NewPairer(staticMinter("ABC"), pairing.PairerOptions{}),
			pairing.HandlerOptions{UserHeader: header, Registerer: reg})
	}

	pair(newHandler(pairing.DefaultUserHeader), pairing.DefaultUserHeader)
	pair(newHandler("X-Forwarded-User"), "X-Forwarded-User")
	ok := map[string]string{"outcome": pairing.OutcomeOK, "endpoint": pairing.EndpointBrowserSession}
	require.Equal(t, 2.0, gatherValue(t, reg, pairing.MetricPairs, ok))
	_, err := reg.Gather()
	require.NoError(t, err)
}
