package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		env  func(string) string
		want string
	}{
		{env("T3FAKE_VERSION", "0.0.28-nightly.20260616.571"), "t3 v0.0.28-nightly.20260616.571\n"},
		{env("T3FAKE_ERA", "b"), "t3 v0.0.25\n"},
		{env(), "t3 v" + t3test.DefaultVersion(t3test.DefaultEra) + "\n"},
	} {
		var out, errb bytes.Buffer
		require.Equal(t, 0, run(context.Background(), []string{"--version"}, tc.env, &out, &errb), errb.String())
		assert.Equal(t, tc.want, out.String())
	}
	var out, errb bytes.Buffer
	assert.Equal(t, 2, run(context.Background(), []string{"--version"}, env("T3FAKE_FAULTS", "bogus"), &out, &errb))
	assert.Equal(t, 2, run(context.Background(), []string{"auth", "session", "list"}, env(), &out, &errb))
}

func TestPairingCreate(t *testing.T) {
	for _, era := range t3test.Eras() {
		t.Run(string(era), func(t *testing.T) {
			dir := t.TempDir()
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"auth", "pairing", "create", "--base-dir", dir, "--ttl", "5m", "--json"},
				env("T3FAKE_ERA", string(era)), &out, &errb)
			require.Equal(t, 0, code, errb.String())
			assert.True(t, strings.HasPrefix(out.String(), "{\n  \"id\": "), "pretty JSON: %s", out.String())
			var link map[string]any
			require.NoError(t, json.Unmarshal(out.Bytes(), &link))
			assert.Regexp(t, `^[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{12}$`, link["credential"])
			if era.UsesScopes() {
				assert.NotEmpty(t, link["scopes"])
				assert.NotContains(t, link, "role")
			} else {
				assert.Equal(t, "client", link["role"])
				assert.NotContains(t, link, "scopes")
			}
			exp, err := time.Parse(t3test.TimeLayout, link["expiresAt"].(string))
			require.NoError(t, err)
			assert.WithinDuration(t, time.Now().Add(5*time.Minute), exp, time.Minute)
			lvl, err := t3test.ReadLedgerMax(t3test.LiveDB(dir))
			require.NoError(t, err)
			assert.Equal(t, era.SchemaLevel(), lvl, "the CLI ran the era's migrations")

			srv := t3test.NewServer(dir, t3test.Options{Era: era})
			defer srv.Close()
			resp, err := http.Post(srv.URL+era.PairingPath(), "application/json",
				strings.NewReader(`{"credential":"`+link["credential"].(string)+`"}`))
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, 200, resp.StatusCode, "a CLI credential works on the server of the same base dir")
		})
	}
}

func TestPairingCreateFailures(t *testing.T) {
	t.Run("old build on a migrated DB", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraC))
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"auth", "pairing", "create", "--base-dir", dir, "--json"}, env("T3FAKE_VERSION", "0.0.27"), &out, &errb)
		assert.Equal(t, 1, code)
		assert.Empty(t, out.String())
		assert.Contains(t, errb.String(), "PersistenceSqlError")
		assert.Contains(t, errb.String(), "table auth_pairing_links has no column named role")
	})
	t.Run("migration fault", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraB))
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"auth", "pairing", "create", "--base-dir", dir, "--json"},
			env("T3FAKE_VERSION", "0.0.30", "T3FAKE_FAULTS", "migration"), &out, &errb)
		assert.Equal(t, 1, code)
		assert.Contains(t, errb.String(), `Migration "31_AuthAuthorizationScopes" failed`)
	})
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--host", "127.0.0.1", "--port", "0", "--base-dir", dir, "--mode", "web", "--no-browser", "--log-level", "info"},
			env("T3FAKE_VERSION", "0.0.36", "T3FAKE_USER", "emil"), &out, &errb)
	}()
	ready := regexp.MustCompile(`T3 Code server is ready\.\nConnection string: (http://127\.0\.0\.1:\d+)\n`)
	var url string
	require.Eventually(t, func() bool {
		m := ready.FindStringSubmatch(out.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond, "ready line; stderr: %s", errb.String())
	assert.Regexp(t, `\nToken: ([2-9A-Z]{12})\nPairing URL: http://127\.0\.0\.1:\d+/pair#token=[2-9A-Z]{12}\n`, out.String())
	assert.Contains(t, out.String(), "Running migration 1_OrchestrationEvents")

	resp, err := http.Get(url + "/.well-known/t3/environment")
	require.NoError(t, err)
	var envBody map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&envBody))
	resp.Body.Close()
	assert.Equal(t, "0.0.36", envBody["serverVersion"])
	assert.Equal(t, "emil", envBody["label"])

	cancel() // what SIGTERM does in main
	select {
	case code := <-done:
		assert.Equal(t, 130, code, "interrupted, as t3's runMain teardown reports it")
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeMigrationFailureExits1(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, t3test.Migrate(context.Background(), dir, t3test.EraB))
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--port", "0", "--base-dir", dir},
		env("T3FAKE_VERSION", "0.0.28", "T3FAKE_FAULTS", "migration"), &out, &errb)
	assert.Equal(t, 1, code)
	assert.Contains(t, out.String(), `Migration \"31_AuthAuthorizationScopes\" failed`)
	assert.Contains(t, errb.String(), `Migration "31_AuthAuthorizationScopes" failed`)
}

// t3's `auth pairing create` (apps/server/src/cli/auth.ts, cliAuthFormat.ts):
// --ttl takes "5m", "1h", "30d" or "15 minutes"; --base-url adds the pair
// URL; the text is four lines; Console.log ends the output with a blank line.
func TestPairingCreateOutput(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		code    int
		ttl     time.Duration
		pattern string // the whole stdout
	}{
		{name: "text", args: []string{"--ttl", "30d"}, ttl: 30 * 24 * time.Hour,
			pattern: `^Issued client pairing token [0-9a-f-]{36}\.\nToken: [2-9A-Z]{12}\nExpires at: \S+Z\n\n$`},
		{name: "text with a pair URL", args: []string{"--ttl", "15 minutes", "--base-url", "https://t3.example.com/x/"}, ttl: 15 * time.Minute,
			pattern: `^Issued client pairing token \S+\.\nToken: ([2-9A-Z]{12})\nPair URL: https://t3\.example\.com/pair#token=[2-9A-Z]{12}\nExpires at: \S+\n\n$`},
		{name: "json", args: []string{"--ttl", "1h", "--json", "--label", "ci"}, ttl: time.Hour,
			pattern: `^\{\n  "id": "\S+",\n  "credential": "[2-9A-Z]{12}",\n  "label": "ci",\n  "role": "client",\n  "expiresAt": "\S+"\n\}\n\n$`},
		{name: "json with a pair URL", args: []string{"--json", "--base-url", "http://127.0.0.1:3773"}, ttl: t3test.DefaultPairingTTL,
			pattern: `(?s)^\{\n.*"role": "client",\n  "expiresAt": "\S+",\n  "pairUrl": "http://127\.0\.0\.1:3773/pair#token=[2-9A-Z]{12}"\n\}\n\n$`},
		{name: "a ttl in Go's own form", args: []string{"--ttl", "1h30m"}, code: 1},
		{name: "a ttl with no unit", args: []string{"--ttl", "300"}, code: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var out, errb bytes.Buffer
			began := time.Now()
			code := run(context.Background(), append([]string{"auth", "pairing", "create", "--base-dir", dir}, tc.args...),
				env("T3FAKE_ERA", "B"), &out, &errb)
			require.Equal(t, tc.code, code, errb.String())
			if tc.code != 0 {
				assert.Empty(t, out.String())
				assert.Contains(t, errb.String(), "--ttl")
				return
			}
			assert.Regexp(t, tc.pattern, out.String())
			exp := regexp.MustCompile(`(?:Expires at: |"expiresAt": ")([^"\s]+)`).FindStringSubmatch(out.String())
			require.Len(t, exp, 2)
			at, err := time.Parse(t3test.TimeLayout, exp[1])
			require.NoError(t, err)
			assert.WithinDuration(t, began.Add(tc.ttl), at, time.Minute)
		})
	}
}
