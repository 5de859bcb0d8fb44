package t3

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		log  string
		want string
	}{
		{"ready\nall good\n", ""},
		{"Running migration 31_AuthAuthorizationScopes\nMigrations applied: 31..32", ""},
		{`Migration "31_AuthAuthorizationScopes" failed: SqlError`, `Migration "31_AuthAuthorizationScopes" failed: SqlError`},
		{`time=x level=ERROR msg="Migration \"31_AuthAuthorizationScopes\" failed: boom"`, `time=x level=ERROR msg="Migration \"31_AuthAuthorizationScopes\" failed: boom"`},
		{"ok\nerror: FAILED TO MIGRATE database\n", "error: FAILED TO MIGRATE database"},
		{"x table auth_pairing_links has no column named role", "x table auth_pairing_links has no column named role"},
		{"NOT NULL constraint failed: auth_pairing_links.scopes", "NOT NULL constraint failed: auth_pairing_links.scopes"},
		{"persistencesqlerror: insert", "persistencesqlerror: insert"},
		{"the migration failed", "the migration failed"},
		// A line longer than any scanner buffer does not end the scan.
		{strings.Repeat("x", 3<<20) + "\r\nMigration \"31_X\" failed: boom\r\n", `Migration "31_X" failed: boom`},
		{"a\n\n" + strings.Repeat("y", 2<<20), ""},
	} {
		assert.Equal(t, tc.want, matchPattern(tc.log), tc.log[:min(len(tc.log), 200)])
	}
}

func TestFormatTTL(t *testing.T) {
	assert.Equal(t, "5m", formatTTL(DefaultMintTTL))
	assert.Equal(t, "90s", formatTTL(90e9))
	assert.Equal(t, "2h", formatTTL(7200e9))
}

// A serve the host could not start (no processes, memory or descriptors
// left) is no verdict on the build; a binary that cannot run is.
func TestHostShortOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"fork: resource temporarily unavailable", &os.SyscallError{Syscall: "fork/exec", Err: syscall.EAGAIN}, true},
		{"out of memory", &os.PathError{Op: "fork/exec", Path: "/x/t3", Err: syscall.ENOMEM}, true},
		{"too many open files", fmt.Errorf("pipe: %w", syscall.EMFILE), true},
		{"file table full", syscall.ENFILE, true},
		{"no such binary", &os.PathError{Op: "fork/exec", Path: "/x/t3", Err: syscall.ENOENT}, false},
		{"exec format error", &os.PathError{Op: "fork/exec", Path: "/x/t3", Err: syscall.ENOEXEC}, false},
		{"permission denied", &os.PathError{Op: "fork/exec", Path: "/x/t3", Err: syscall.EACCES}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, hostShortOf(tt.err))
		})
	}
}

// readLogs reads the server's own logs, in t3's place and the older one,
// and not what agents and shells printed into the subdirectories beside
// them (any text, error messages quoted included).
func TestReadLogsReadsTheServersOwnLogsOnly(t *testing.T) {
	base := t.TempDir()
	write := func(rel, text string) {
		p := filepath.Join(base, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	write("userdata/logs/server.log", "Migration \"31_AuthAuthorizationScopes\" failed")
	write("logs/server.log", "older layout line")
	write("userdata/logs/provider/events.log", "agent printed: no column named role")
	write("userdata/logs/terminals/t1.log", "$ grep 'database is locked'")
	got := readLogs(base)
	require.Contains(t, got, `Migration "31_AuthAuthorizationScopes" failed`)
	require.Contains(t, got, "older layout line")
	require.NotContains(t, got, "no column named role")
	require.NotContains(t, got, "database is locked")
}

// A serve that lost its port is run again on another, whatever words say
// so; anything else is the build's verdict.
func TestPortTaken(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want bool
	}{
		{"listen tcp 127.0.0.1:41234: bind: address already in use", true},
		{"Error: listen EADDRINUSE: address already in use 127.0.0.1:41234", true},
		{"ServeError: EADDRINUSE", true},
		// The wording an open upstream PR (t3code #7703) gives t3 serve.
		{"Port 3773 on 127.0.0.1 is already in use. Stop whatever is listening there", true},
		{"Port 3773 on 127.0.0.1 is already in use by a running T3 Code server (pid 1080)", true},
		{"port 41234 is already in use; pick another with --port", true},
		{"migration 31_AuthAuthorizationScopes failed: table auth_sessions already exists", false},
		{"SqliteError: database is locked", false},
		{"the name emil is already in use", false},
		{"", false},
	} {
		assert.Equal(t, tc.want, portTaken(tc.out), "%q", tc.out)
	}
}
