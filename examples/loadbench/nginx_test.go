package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/t3fleet/t3fleet/internal/realtest"
)

func TestRunRejectsNginxFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"nginx and relay", []string{"-nginx", "-relay"}},
		{"nginx and bare", []string{"-nginx", "-bare"}},
		{"versus and nginx", []string{"-versus-nginx", "-nginx"}},
		{"versus and relay", []string{"-versus-nginx", "-relay"}},
		{"versus and a profile", []string{"-versus-nginx", "-cpuprofile", "/tmp/x.prof"}},
		{"zero workers", []string{"-nginx", "-nginx-workers", "0"}},
		{"word workers", []string{"-nginx", "-nginx-workers", "many"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			require.Equal(t, 2, run(context.Background(), tt.args, &out, &errOut))
			require.NotEmpty(t, errOut.String())
		})
	}
}

// TestNginxProxies starts the -nginx mode's nginx in front of a loopback
// server. It skips without nginx, unless T3FLEET_REQUIRE_REAL=1 (CI
// installs nginx-light, so the comparison mode the README quotes is tried).
func TestNginxProxies(t *testing.T) {
	if _, err := lookNginx(); err != nil {
		realtest.Missing(t, "%v (apt-get install nginx-light)", err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.Host+" "+r.Header.Get("Cookie"))
	}))
	defer up.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := startNginx(ctx, up.URL, "1", io.Discard)
	require.NoError(t, err)
	t.Cleanup(n.Close) // a failed check still stops nginx; Close is idempotent
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+"/x", nil)
	require.NoError(t, err)
	req.Header.Set("Cookie", "a=b")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "hello "+req.URL.Host+" a=b", string(body), "nginx passes Host and cookies through")

	n.Close()
	_, err = os.Stat(n.dir)
	require.True(t, os.IsNotExist(err), "the private prefix is removed")
	_, err = http.Get(n.URL())
	require.Error(t, err, "nginx is stopped")
}

func TestStartNginxRefusesNonLoopbackUpstream(t *testing.T) {
	if _, err := lookNginx(); err != nil {
		realtest.Missing(t, "%v (apt-get install nginx-light)", err)
	}
	_, err := startNginx(context.Background(), "http://192.0.2.1:80", "1", io.Discard)
	require.Error(t, err)
}

// TestRunVersusNginx measures the dispatch and nginx in the same rounds and
// prints the dispatch's share of nginx's ratio. It needs wrk and nginx (both
// optional here: it skips without them, even under T3FLEET_REQUIRE_REAL=1,
// as only this mode needs nginx).
func TestRunVersusNginx(t *testing.T) {
	if _, err := lookNginx(); err != nil {
		t.Skip(err)
	}
	if _, err := lookWrk(""); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"-versus-nginx", "-duration", "1s", "-runs", "2", "-warmup", "0", "-connections", "4", "-threads", "1"}, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	for _, p := range []string{"asset", "page"} {
		require.Regexp(t, `(?m)^`+p+`: the dispatch [0-9.]+, nginx [0-9.]+ \(ratios to direct, same rounds\): the dispatch keeps [0-9.]+x what nginx keeps`, out.String())
	}
	require.Contains(t, out.String(), "handed 0 connection(s)")
}
