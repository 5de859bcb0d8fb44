package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/pairing"
)

// lockedBuffer is a bytes.Buffer safe for the log handler's and the
// browser's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Count is how many lines contain every one of parts.
func (b *lockedBuffer) Count(parts ...string) int {
	n := 0
	for line := range strings.SplitSeq(b.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

func TestRunFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"-nope"}, 2},
		{[]string{"-log-format", "xml"}, 2},
		{[]string{"extra"}, 2},
		{[]string{"-trusted-proxies", "10.0.0.0/99"}, 2},
		{[]string{"-trusted-proxy-users", "t3fleet-no-such-user"}, 2},
		{[]string{"-trusted-proxy-users", "4294967296"}, 2},
		{[]string{"-trusted-proxy-users", "t3fleet-no-such-user", "-demo"}, 2},
		{[]string{"-user-domains", "corp.example,"}, 2},
		{[]string{"-user-domains", "ana@corp.example"}, 2},
		{[]string{"-user-domains", "corp example"}, 2},
		{[]string{"-user-domains", ".corp.example"}, 2},
		{[]string{"-mint-command", "t3-mint --user={os_user}"}, 2},
		{[]string{"-mint-command", "'unterminated"}, 2},
		{[]string{"-table", "/nonexistent/dispatch.json", "-listen", "127.0.0.1:0"}, 1},
		{[]string{"-h"}, 0},
	}
	for _, tc := range tests {
		var out, errw lockedBuffer
		assert.Equal(t, tc.want, run(context.Background(), tc.args, &out, &errw), "%v: %s", tc.args, errw.String())
	}
}

// startRun runs the binary's run() until the test ends and returns its
// base URL and its log.
func startRun(t *testing.T, args ...string) (string, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs lockedBuffer
	done := make(chan int)
	go func() { done <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), &out, &logs) }()
	t.Cleanup(func() {
		cancel()
		assert.Equal(t, 0, <-done, "clean shutdown")
	})
	re := regexp.MustCompile(`listening on (http://\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1], &logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not start: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// oneInstanceRun starts run() in front of one fake instance for
// emil.barzin, from a dispatch.json and a mint command run without a
// shell that hands out one credential minted beforehand and records the
// argv it got in <dir>/argv; args come after -table and -mint-command.
func oneInstanceRun(t *testing.T, args ...string) (base string, logs *lockedBuffer, dir string) {
	t.Helper()
	srv := t3test.NewServer(t.TempDir(), t3test.Options{Era: t3test.EraB, User: "emil.barzin"})
	t.Cleanup(srv.Close)
	cred, err := srv.Mint(0)
	require.NoError(t, err)
	dir = t.TempDir()
	mint := filepath.Join(dir, "t3-mint")
	require.NoError(t, os.WriteFile(mint, []byte(fmt.Sprintf("#!/bin/sh\necho \"$@\" > %s/argv\necho '{\"id\":\"p\",\"credential\":\"%s\",\"expiresAt\":\"2030-01-01T00:00:00.000Z\"}'\n", dir, cred)), 0o755))
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	table := filepath.Join(dir, "dispatch.json")
	require.NoError(t, os.WriteFile(table, []byte(`{"emil.barzin":{"os_user":"emil","port":`+port+`}}`), 0o644))
	base, logs = startRun(t, append([]string{"-table", table, "-mint-command", mint + " {os_user}"}, args...)...)
	return base, logs, dir
}

// TestRunEndToEnd runs the real wiring (dispatch.json, a mint command run
// without a shell, the CLI JSON) against a fake instance.
func TestRunEndToEnd(t *testing.T) {
	base, logs, dir := oneInstanceRun(t, "-user-header", "X-Remote-User", "-log-format", "json", "-user-domains", "corp.example")

	for path, want := range map[string]string{"/healthz": "ok\n", "/metrics": "t3fleet_dispatch_pairs_total"} {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.True(t, strings.Contains(string(b), want), "%s lacks %q", path, want)
	}

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(user string, cookies ...*http.Cookie) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, base+"/x?y=1", nil)
		req.Header.Set("X-Remote-User", user)
		req.Header.Set("Sec-Fetch-Dest", "document")
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	assert.Equal(t, http.StatusForbidden, get("mallory").StatusCode)
	assert.Equal(t, http.StatusForbidden, get("emil.barzin@elsewhere.example").StatusCode, "a domain not in -user-domains")
	resp := get("emil.barzin@corp.example")
	require.Equal(t, http.StatusFound, resp.StatusCode, logs.String())
	assert.Equal(t, "/x?y=1", resp.Header.Get("Location"))
	argv, err := os.ReadFile(filepath.Join(dir, "argv"))
	require.NoError(t, err)
	assert.Equal(t, "emil\n", string(argv))
	assert.Contains(t, logs.String(), `"msg":"paired","user":"emil.barzin","endpoint":"`+pairing.EndpointBrowserSession+`","fallback":false`)
	require.NotEmpty(t, resp.Cookies())
	assert.Equal(t, http.StatusOK, get("emil.barzin", resp.Cookies()...).StatusCode)

	// The credential was one-time: the next pairing is refused by t3.
	resp = get("emil.barzin")
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, logs.String(), `pairing for emil.barzin returned 401 (endpoint=/api/auth/browser-session)`)
}

// TestRunDemo runs `dispatch -demo` as a person would and opens the URL it
// prints.
func TestRunDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs lockedBuffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"-demo", "-listen", "127.0.0.1:0"}, &out, &logs) }()
	re := regexp.MustCompile(`open (http://\S+) and pick a user`)
	var loginURL string
	eventuallyMatch := time.Now().Add(20 * time.Second)
	for loginURL == "" {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			loginURL = m[1]
			break
		}
		if time.Now().After(eventuallyMatch) {
			cancel()
			t.Fatalf("demo did not print its URL: %s %s", out.String(), logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get(loginURL)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	for _, u := range []string{"ana", "emil.barzin", "kim"} {
		assert.Contains(t, string(b), `id="login-`+u+`"`)
		assert.Contains(t, out.String(), u)
	}
	cancel()
	assert.Equal(t, 0, <-done)
	// Neither root nor -trusted-proxy-users, and no warning: no real users.
	assert.NotContains(t, logs.String(), "trusted-proxy-users")
}
