package t3_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3"
)

// script writes an executable shell script standing in for t3-mint. The
// script is the test's own fixed text; user names reach it only as argv.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "t3-mint")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	return p
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{t3.DefaultMintCommand, []string{"sudo", "-n", "/usr/local/bin/t3-mint", "{os_user}"}, false},
		{`  a   'b c'  "d e" f`, []string{"a", "b c", "d e", "f"}, false},
		{`a ''`, []string{"a", ""}, false},
		{`a 'b`, nil, true},
		{``, nil, false},
	}
	for _, tc := range tests {
		got, err := t3.SplitCommand(tc.in)
		if tc.err {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func TestNewCLIMinterRefusesEmbeddedPlaceholders(t *testing.T) {
	_, err := t3.NewCLIMinter([]string{"t3-mint", "--user={os_user}"}, t3.CLIMinterOptions{})
	assert.Error(t, err)
	_, err = t3.NewCLIMinter(nil, t3.CLIMinterOptions{})
	assert.Error(t, err)
}

func TestCLIMinterArgv(t *testing.T) {
	m, err := t3.NewCLIMinter([]string{"t3", "auth", "pairing", "create", "--base-dir", "{state_dir}", "--for", "{os_user}"}, t3.CLIMinterOptions{})
	require.NoError(t, err)
	got, err := m.Argv(t3fleet.Instance{User: "emil.barzin", OSUser: "emil", StateDir: "/home/emil/.t3"})
	require.NoError(t, err)
	assert.Equal(t, []string{"t3", "auth", "pairing", "create", "--base-dir", "/home/emil/.t3", "--for", "emil"}, got)
	_, err = m.Argv(t3fleet.Instance{User: "x", OSUser: "emil"})
	assert.Error(t, err, "empty state dir")
	_, err = m.Argv(t3fleet.Instance{User: "x", OSUser: "emil", StateDir: "rel/dir"})
	assert.Error(t, err, "relative state dir")
}

func TestCLIMinterMint(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	tests := []struct {
		name    string
		body    string
		osUser  string
		timeout time.Duration
		want    string
		wantExp time.Time
		errLike string
	}{
		{"pretty JSON", `printf '{\n  "id": "p1",\n  "credential": "ABCDEFGHJKLM",\n  "role": "client",\n  "expiresAt": "2026-11-23T20:05:00.000Z"\n}\n'`,
			"emil", 0, "ABCDEFGHJKLM", time.Date(2026, 11, 23, 20, 5, 0, 0, time.UTC), ""},
		{"noise before JSON, epoch ms", `echo "migrating..."; echo '{"id":"p2","credential":"23456789ABCD","expiresAt":1795464300000}'`,
			"emil", 0, "23456789ABCD", time.UnixMilli(1795464300000), ""},
		{"argv is the os user", `echo "{\"credential\":\"$1\"}"`, "a_b-c", 0, "a_b-c", time.Time{}, ""},
		{"exit 1 carries stderr", `echo "user not allowed" >&2; exit 1`, "emil", 0, "", time.Time{}, "user not allowed"},
		{"empty credential", `echo '{"credential":""}'`, "emil", 0, "", time.Time{}, "empty credential"},
		{"no JSON", `echo ok`, "emil", 0, "", time.Time{}, "no JSON"},
		{"timeout", `sleep 5`, "emil", 200 * time.Millisecond, "", time.Time{}, "deadline"},
		{"hostile os user never runs", "touch " + marker, "../x", 0, "", time.Time{}, "OS user"},
		{"shell metacharacters never run", "touch " + marker, "a;touch", 0, "", time.Time{}, "OS user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := t3.NewCLIMinter([]string{script(t, tc.body), "{os_user}"}, t3.CLIMinterOptions{Timeout: tc.timeout})
			require.NoError(t, err)
			c, err := m.Mint(context.Background(), t3fleet.Instance{User: "u", OSUser: tc.osUser})
			if tc.errLike != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.errLike)
				assert.NoFileExists(t, marker)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.Secret)
			assert.True(t, tc.wantExp.Equal(c.ExpiresAt), "expiresAt %v", c.ExpiresAt)
		})
	}
}

func TestCLIMinterErrorType(t *testing.T) {
	m, err := t3.NewCLIMinter([]string{script(t, `echo boom >&2; exit 3`), "{os_user}"}, t3.CLIMinterOptions{})
	require.NoError(t, err)
	_, err = m.Mint(context.Background(), t3fleet.Instance{User: "u", OSUser: "emil"})
	var ce *t3.MintCommandError
	require.True(t, errors.As(err, &ce))
	assert.Equal(t, 3, ce.ExitCode)
	assert.Equal(t, "boom", ce.Stderr)
}

func ExampleSplitCommand() {
	argv, _ := t3.SplitCommand(t3.DefaultMintCommand)
	m, _ := t3.NewCLIMinter(argv, t3.CLIMinterOptions{})
	got, _ := m.Argv(t3fleet.Instance{User: "emil.barzin", OSUser: "emil"})
	fmt.Printf("%q\n", got)
	// Output: ["sudo" "-n" "/usr/local/bin/t3-mint" "emil"]
}

// A mint that runs past its timeout is ended with everything it started:
// the default command is sudo, which cannot pass a SIGKILL on, and a CLI
// left running could go on migrating the user's database after the
// pairing gave up, beside the next page load's CLI.
func TestCLIMinterTimeoutEndsTheWholeCommand(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	// The stand-in for sudo runs the CLI (here: sleep) as a child and waits.
	body := `sleep 30 & echo $! > ` + pidfile + `; wait`
	m, err := t3.NewCLIMinter([]string{script(t, body), "{os_user}"}, t3.CLIMinterOptions{Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	_, err = m.Mint(context.Background(), t3fleet.Instance{User: "u", OSUser: "emil"})
	require.ErrorContains(t, err, "deadline")
	b, err := os.ReadFile(pidfile)
	require.NoError(t, err)
	var pid int
	_, err = fmt.Sscan(string(b), &pid)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !alive(pid) }, 5*time.Second, 20*time.Millisecond,
		"the CLI the command started (pid %d) outlived the mint's timeout", pid)
}

// alive says whether pid runs (a zombie does not: nothing reaps orphans in
// some containers).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
