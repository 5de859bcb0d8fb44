package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostileNames are strings a user can put where the updater prints them:
// in a file name under their backup directory, in the metadata beside a
// snapshot, in what their instance answers. Each must reach the operator
// escaped and quoted (strconv.Quote), never as is.
var hostileNames = []struct {
	name, s string
	// viaJSON is how s reads back from a JSON file, when that is plain
	// text and prints as is: encoding/json decodes invalid UTF-8 as U+FFFD.
	viaJSON string
}{
	{name: "newline and a fake row", s: "x\nalice  prebump-9.9.9  2099-01-01T00:00:00Z  1 B  34  yes  9.9.9  ok"},
	{name: "ANSI escape", s: "\x1b[2J\x1b[1;32mok\x1b[0m"},
	{name: "tab", s: "a\tb"},
	{name: "invalid UTF-8", s: "bad\xff\xfename", viaJSON: "bad\ufffd\ufffdname"},
	{name: "only spaces", s: "   "},
}

// jsonWant is how h.s, read from a JSON file, must be printed.
func jsonWant(s, viaJSON string) string {
	if viaJSON != "" {
		return viaJSON
	}
	return strconv.Quote(s)
}

// assertPlain checks that out is valid UTF-8 of printable runes and
// newlines, in exactly lines lines: nothing a user wrote can move the
// cursor, colour the terminal or start a line of its own.
func assertPlain(t *testing.T, out string, lines int) {
	t.Helper()
	require.True(t, utf8.ValidString(out), "invalid UTF-8 in output:\n%s", out)
	for _, r := range out {
		if r != '\n' && !strconv.IsPrint(r) {
			t.Errorf("unprintable %U in output:\n%s", r, out)
			break
		}
	}
	assert.Len(t, strings.Split(strings.TrimSuffix(out, "\n"), "\n"), lines, "lines of:\n%s", out)
}

// plantSnapshot writes a snapshot file named name in user's backup
// directory and, when meta is not nil, the metadata file beside it.
func (f *opsFixture) plantSnapshot(t *testing.T, user, name string, meta map[string]any) string {
	t.Helper()
	dir := filepath.Join(f.env["T3_BACKUP_DEST"], user)
	require.NoError(t, os.MkdirAll(dir, 0o700))
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
	// Dated as its name would be: listed after the plain one of a day later.
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, os.Chtimes(p, old, old))
	if meta != nil {
		b, err := json.Marshal(meta)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p+".json", b, 0o600))
	}
	return p
}

func TestBackupsEscapesUserNames(t *testing.T) {
	for _, h := range hostileNames {
		t.Run(h.name, func(t *testing.T) {
			f := newOpsFixture(t)
			// A file the user created, and a plain one with metadata they
			// planted: label and version are theirs.
			named := f.plantSnapshot(t, "alice", "state-"+h.s+"-20260101-000000.sqlite", nil)
			f.plantSnapshot(t, "alice", "state-20260102-000000.sqlite", map[string]any{
				"label": h.s, "version": h.s, "time": "2026-01-02T00:00:00Z",
				"schema_level": 34, "size": 1, "check": "quick_check",
			})
			code, out, errs := f.call("backups", "--user", "alice")
			require.Equal(t, 0, code, errs)
			assertPlain(t, out, 3)
			rows := strings.Split(out, "\n")
			assert.True(t, strings.HasPrefix(rows[1], "alice "), rows[1])
			assert.True(t, strings.HasPrefix(rows[2], "alice "), rows[2])
			want := jsonWant(h.s, h.viaJSON)
			assert.Contains(t, rows[1], "alice  "+want+" ", "the planted label, then version, quoted")
			assert.Equal(t, 2, strings.Count(rows[1], want), rows[1])
			if h.s != "   " { // a name with blanks inside is plain text
				assert.Contains(t, rows[2], strconv.Quote(named))
			}
		})
	}
}
