package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// /healthz and /metrics are matched exactly; every other request reaches
// the dispatch as sent. A ServeMux in front would answer paths that are not
// clean ("//", "/./", "/../") with its own redirect: XHR, assets and
// WebSockets on net/http's path would get a 307 the dispatch never sends.
func TestOpsServeOnlyTheirOwnPaths(t *testing.T) {
	var got []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI())
		io.WriteString(w, "dispatch")
	})
	ops := withOps(h, prometheus.NewRegistry())
	for _, tc := range []struct {
		method, target string
		status         int
		body           string
	}{
		{"GET", "/healthz", 200, "ok\n"},
		{"HEAD", "/healthz", 200, ""},
		{"GET", "/metrics", 200, ""},
		{"POST", "/healthz", 200, "dispatch"},
		{"GET", "/healthz/", 200, "dispatch"},
		{"GET", "/assets//app.js", 200, "dispatch"},
		{"POST", "/api//upload", 200, "dispatch"},
		{"GET", "/a/./b?x=1", 200, "dispatch"},
		{"GET", "/a/../b", 200, "dispatch"},
		{"GET", "//evil.example/x", 200, "dispatch"},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			got = nil
			req := httptest.NewRequest(tc.method, "http://t3.example"+tc.target, strings.NewReader(""))
			req.RequestURI = tc.target
			rec := httptest.NewRecorder()
			ops.ServeHTTP(rec, req)
			require.Equal(t, tc.status, rec.Code, rec.Header().Get("Location"))
			if tc.body != "" {
				require.Equal(t, tc.body, rec.Body.String())
			}
			if tc.body == "dispatch" {
				require.Len(t, got, 1, "reached the dispatch")
			} else {
				require.Empty(t, got, "answered by the ops handler, not the dispatch")
			}
		})
	}
}
