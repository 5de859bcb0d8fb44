package hostfiles_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
)

func writeTable(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(body), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

func TestParseDispatchTable(t *testing.T) {
	tests := []struct {
		name, body string
		err        bool
		users      int
	}{
		{"seed format", `{"emil.barzin":{"os_user":"emil","port":3801},"ana":{"os_user":"ana","port":3802}}`, false, 2},
		{"empty object", `{}`, false, 0},
		{"not JSON", `{"emil":`, true, 0},
		{"array", `[]`, true, 0},
		{"null", `null`, true, 0},
		{"hostile sso name", `{"../x":{"os_user":"x","port":3801}}`, true, 0},
		{"sso name with @", `{"a@b":{"os_user":"x","port":3801}}`, true, 0},
		{"hostile os user", `{"emil":{"os_user":"../root","port":3801}}`, true, 0},
		{"os user with space", `{"emil":{"os_user":"a b","port":3801}}`, true, 0},
		{"port zero", `{"emil":{"os_user":"emil","port":0}}`, true, 0},
		{"port too big", `{"emil":{"os_user":"emil","port":70000}}`, true, 0},
		{"port as string", `{"emil":{"os_user":"emil","port":"3801"}}`, true, 0},
		// A second table appended, or a shorter one written over a longer
		// one: malformed, not the first object alone.
		{"text after the object", `{"emil":{"os_user":"emil","port":3801}}{"bob":{"os_user":"bob","port":3802}}`, true, 0},
		{"tail of an older file", `{"emil":{"os_user":"emil","port":3801}},"bob":{"os_user":"bob","port":3802}}`, true, 0},
		{"trailing newline", "{\"emil\":{\"os_user\":\"emil\",\"port\":3801}}\n", false, 1},
		// JSON would keep the last silently; which one was meant is a guess.
		{"user given twice", `{"emil":{"os_user":"emil","port":3801},"emil":{"os_user":"bob","port":3802}}`, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := hostfiles.ParseDispatchTable([]byte(tc.body), "127.0.0.1")
			if tc.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Len(t, m, tc.users)
		})
	}
}

func TestDispatchTableRoute(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dispatch.json")
	writeTable(t, path, `{"emil.barzin":{"os_user":"emil","port":3801,"state_dir":"/home/emil/.t3"}}`)
	tbl, err := hostfiles.NewDispatchTable(path, hostfiles.DispatchTableOptions{UpstreamHost: "::1"})
	require.NoError(t, err)
	in, ok := tbl.Route("emil.barzin")
	require.True(t, ok)
	assert.Equal(t, "emil.barzin", in.User)
	assert.Equal(t, "emil", in.OSUser)
	assert.Equal(t, "http://[::1]:3801", in.BaseURL)
	assert.Equal(t, "/home/emil/.t3", in.StateDir)
	_, ok = tbl.Route("Emil.Barzin")
	assert.False(t, ok, "names are exact")
}

func TestNewDispatchTableNeedsAGoodFirstLoad(t *testing.T) {
	dir := t.TempDir()
	_, err := hostfiles.NewDispatchTable(filepath.Join(dir, "missing.json"), hostfiles.DispatchTableOptions{})
	assert.Error(t, err)
	bad := filepath.Join(dir, "bad.json")
	writeTable(t, bad, `{`)
	_, err = hostfiles.NewDispatchTable(bad, hostfiles.DispatchTableOptions{})
	assert.Error(t, err)
}

// TestNewDispatchTableFirstLoadClaimsNoLastGoodTable: a first load that
// fails has no last good table to keep, so the log must not say it keeps
// one (the dispatch exits with the error instead).
func TestNewDispatchTableFirstLoadClaimsNoLastGoodTable(t *testing.T) {
	var logs bytes.Buffer
	bad := filepath.Join(t.TempDir(), "bad.json")
	writeTable(t, bad, `{`)
	_, err := hostfiles.NewDispatchTable(bad, hostfiles.DispatchTableOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.Error(t, err)
	assert.NotContains(t, logs.String(), "last good")
}

// TestDispatchTableReload edits the file under a live table: a good edit
// takes effect after the check interval, a broken one keeps the last good
// table and logs why, and a repaired file takes effect again.
func TestDispatchTableReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dispatch.json")
	writeTable(t, path, `{"ana":{"os_user":"ana","port":3801}}`)
	now := time.Unix(1_800_000_000, 0)
	var logs bytes.Buffer
	tbl, err := hostfiles.NewDispatchTable(path, hostfiles.DispatchTableOptions{
		CheckInterval: time.Second,
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
		Now:           func() time.Time { return now },
	})
	require.NoError(t, err)

	steps := []struct {
		name     string
		body     string // "" leaves the file alone
		advance  time.Duration
		user     string
		wantPort int // 0: not routed
		wantLog  string
	}{
		{"initial", "", 0, "ana", 3801, "dispatch table loaded"},
		{"edit not seen before the interval", `{"ana":{"os_user":"ana","port":3901},"bo":{"os_user":"bo","port":3902}}`, 0, "bo", 0, ""},
		{"edit seen after the interval", "", 2 * time.Second, "bo", 3902, ""},
		{"broken file keeps the last good", `{"ana":{"os_user":"ana",`, 2 * time.Second, "ana", 3901, "keeping the last good one"},
		{"invalid name keeps the last good", `{"ana":{"os_user":"../etc","port":1}}`, 2 * time.Second, "bo", 3902, "OS user"},
		{"deleted file keeps the last good", "-", 2 * time.Second, "ana", 3901, "no such file"},
		{"repaired file takes effect", `{"cy":{"os_user":"cy","port":3903}}`, 2 * time.Second, "cy", 3903, ""},
		{"removed user is gone", "", 0, "ana", 0, ""},
	}
	for _, st := range steps {
		switch st.body {
		case "":
		case "-":
			require.NoError(t, os.Remove(path))
		default:
			writeTable(t, path, st.body)
		}
		now = now.Add(st.advance)
		in, ok := tbl.Route(st.user)
		if st.wantPort == 0 {
			assert.False(t, ok, st.name)
		} else if assert.True(t, ok, st.name) {
			assert.Equal(t, fmt.Sprintf("http://127.0.0.1:%d", st.wantPort), in.BaseURL, st.name)
		}
		if st.wantLog != "" {
			assert.Contains(t, logs.String(), st.wantLog, st.name)
		}
	}
}

// An edit that keeps the file's size and mtime (a deploy that preserves
// mtimes: cp -p, rsync -a, tar; or two writes within one timestamp tick)
// is still seen.
func TestDispatchTableReloadSeesASameSizeSameMtimeEdit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dispatch.json")
	writeTable(t, path, `{"ana":{"os_user":"ana","port":3801}}`)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	tbl, err := hostfiles.NewDispatchTable(path, hostfiles.DispatchTableOptions{CheckInterval: -1})
	require.NoError(t, err)
	writeTable(t, path, `{"ana":{"os_user":"bob","port":3802}}`)
	require.NoError(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
	in, ok := tbl.Route("ana")
	require.True(t, ok)
	require.Equal(t, "bob", in.OSUser)
	require.Equal(t, "http://127.0.0.1:3802", in.BaseURL)
}

func ExampleParseDispatchTable() {
	m, _ := hostfiles.ParseDispatchTable([]byte(`{"emil.barzin":{"os_user":"emil","port":3801}}`), "127.0.0.1")
	fmt.Println(m["emil.barzin"].OSUser, m["emil.barzin"].BaseURL)
	// Output: emil http://127.0.0.1:3801
}
