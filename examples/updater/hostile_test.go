package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
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
	// plainInside: s inside a longer string (a path) is plain text there.
	plainInside bool
}{
	{name: "newline and a fake row", s: "x\nalice  prebump-9.9.9  2099-01-01T00:00:00Z  1 B  34  yes  9.9.9  ok"},
	{name: "ANSI escape", s: "\x1b[2J\x1b[1;32mok\x1b[0m"},
	{name: "tab", s: "a\tb"},
	{name: "invalid UTF-8", s: "bad\xff\xfename", viaJSON: "bad\ufffd\ufffdname"},
	{name: "only spaces", s: "   ", plainInside: true},
}

// jsonWant is how s, read from a JSON file as viaJSON, must be printed.
func jsonWant(s, viaJSON string) string {
	if viaJSON != "" {
		return viaJSON
	}
	return strconv.Quote(s)
}

// pathWant is how path, which holds a hostile name, must be printed.
func pathWant(path string, plainInside bool) string {
	if plainInside {
		return path
	}
	return strconv.Quote(path)
}

// lineCount is how many lines out holds, a last newline ending the last.
func lineCount(out string) int {
	return len(strings.Split(strings.TrimSuffix(out, "\n"), "\n"))
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
			assert.Contains(t, rows[2], "  "+pathWant(named, h.plainInside))
		})
	}
}

// A prebump snapshot the user renamed and whose metadata label they
// edited: `restore --latest-prebump` picks it, and prints its path and
// label in its report, or in its error when the restore fails.
func TestRestoreEscapesUserNames(t *testing.T) {
	for _, h := range hostileNames {
		for _, broken := range []bool{false, true} {
			t.Run(h.name+map[bool]string{false: "", true: " failing"}[broken], func(t *testing.T) {
				f := newOpsFixture(t)
				f.seed(t, "alice", t3test.EraD, t3test.SeedOptions{})
				require.Equal(t, 0, first(f.call("backup", "--user", "alice", "--label", "prebump-0.0.46")))
				snaps, _ := filepath.Glob(filepath.Join(f.env["T3_BACKUP_DEST"], "alice", "*.sqlite"))
				require.Len(t, snaps, 1)
				renamed := filepath.Join(filepath.Dir(snaps[0]), "state-prebump-"+h.s+"-20260101-000000.sqlite")
				require.NoError(t, os.Rename(snaps[0], renamed))
				var meta map[string]any
				b, err := os.ReadFile(snaps[0] + ".json")
				require.NoError(t, err)
				require.NoError(t, json.Unmarshal(b, &meta))
				meta["label"] = "prebump-" + h.s
				b, err = json.Marshal(meta)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(renamed+".json", b, 0o600))
				require.NoError(t, os.Remove(snaps[0]+".json"))
				if broken { // the recorded checksum no longer matches
					require.NoError(t, os.WriteFile(renamed, []byte("x"), 0o600))
				}

				code, out, errs := f.call("restore", "--user", "alice", "--latest-prebump")
				if broken {
					require.Equal(t, 1, code, out)
					assertPlain(t, errs, 1)
					assert.Contains(t, errs, "updater restore: ")
					return
				}
				require.Equal(t, 0, code, errs)
				assertPlain(t, out, 2)
				label := jsonWant("prebump-"+h.s, "")
				if h.viaJSON != "" {
					label = "prebump-" + h.viaJSON
				}
				assert.True(t, strings.HasPrefix(out, "alice: restored "+pathWant(renamed, h.plainInside)+" ("+label+", schema "), out)
			})
		}
	}
}

func TestErrText(t *testing.T) {
	plain, evil := errors.New("read journal.json: malformed"), errors.New("open /b/state-\x1b[2J.sqlite: denied")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{plain, "read journal.json: malformed"},
		{evil, `"open /b/state-\x1b[2J.sqlite: denied"`},
		// errors.Join's lines are structure: each error on its own line.
		{errors.Join(plain, evil), "read journal.json: malformed\n" + `"open /b/state-\x1b[2J.sqlite: denied"`},
		{errors.Join(plain, errors.New("x\ny")), "read journal.json: malformed\n" + `"x\ny"`},
		// A newline that is no join's is the text's own.
		{fmt.Errorf("status: %w", errors.Join(plain, plain)), `"status: read journal.json: malformed\nread journal.json: malformed"`},
		{fmt.Errorf("%w: %w", plain, evil), `"read journal.json: malformed: open /b/state-\x1b[2J.sqlite: denied"`},
	} {
		assert.Equal(t, tc.want, errText(tc.err))
	}
}
