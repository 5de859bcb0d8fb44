package t3_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/pairing"
)

// sideBySide stages fake builds as <prefix>/versions/<v>/t3 and finds them.
type sideBySide struct{ prefix string }

func (s sideBySide) stage(t *testing.T, versions ...string) {
	for _, v := range versions {
		stageBuild(t, s.prefix, v, t3test.Faults{})
	}
}

func (s sideBySide) BinFor(v string) (string, error) {
	bin := filepath.Join(s.prefix, "versions", v, "t3")
	if _, err := os.Stat(bin); err != nil {
		return "", err
	}
	return bin, nil
}

func TestVersionMinterMintsWithTheInstancesOwnBuild(t *testing.T) {
	inst := sideBySide{prefix: t.TempDir()}
	inst.stage(t, "0.0.27", "0.0.30") // the old running build and the new staged one
	dir := t.TempDir()
	srv := t3test.NewServer(dir, t3test.Options{Version: "0.0.27"})
	t.Cleanup(srv.Close)

	m, err := t3.NewVersionMinter(inst.BinFor, t3.VersionMinterOptions{})
	require.NoError(t, err)
	in := t3fleet.Instance{User: "emil.barzin", OSUser: "emil", BaseURL: srv.URL, StateDir: srv.BaseDir}
	cred, err := m.Mint(context.Background(), in)
	require.NoError(t, err)
	assert.Len(t, cred.Secret, 12)
	assert.False(t, cred.ExpiresAt.IsZero())

	lvl, err := t3test.ReadLedgerMax(t3test.StateDB(dir))
	require.NoError(t, err)
	assert.Equal(t, 30, lvl, "the 0.0.30 CLI would have run migration 31 under the running 0.0.27")

	sess, err := pairing.Exchange(context.Background(), nil, srv.URL, cred.Secret, "")
	require.NoError(t, err)
	assert.Equal(t, srv.CookieName(), sess.Cookies[0].Name)
}

// A pairing right after a restart asks the instance its version in the
// window where t3 accepts connections it never answers (t3code #12215):
// the minter asks again on a new connection instead of waiting out its
// request timeout and failing the mint.
func TestVersionMinterThroughTheStartWindow(t *testing.T) {
	inst := sideBySide{prefix: t.TempDir()}
	inst.stage(t, "0.0.27")
	srv := t3test.NewServer(t.TempDir(), t3test.Options{Version: "0.0.27", Faults: t3test.Faults{DeafStart: 600 * time.Millisecond}})
	t.Cleanup(srv.Close)
	m, err := t3.NewVersionMinter(inst.BinFor, t3.VersionMinterOptions{RequestTimeout: 5 * time.Second})
	require.NoError(t, err)
	t0 := time.Now()
	cred, err := m.Mint(context.Background(), t3fleet.Instance{User: "emil.barzin", OSUser: "emil", BaseURL: srv.URL, StateDir: srv.BaseDir})
	require.NoError(t, err)
	assert.Len(t, cred.Secret, 12)
	assert.Less(t, time.Since(t0), 4*time.Second)
}

func TestVersionMinterRefuses(t *testing.T) {
	inst := sideBySide{prefix: t.TempDir()}
	inst.stage(t, "0.0.30")
	m, err := t3.NewVersionMinter(inst.BinFor, t3.VersionMinterOptions{})
	require.NoError(t, err)
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"serverVersion":"../../../bin/sh"}`)
	}))
	t.Cleanup(hostile.Close)

	dir := t.TempDir()
	old := t3test.NewServer(dir, t3test.Options{Version: "0.0.26"})
	t.Cleanup(old.Close)
	for _, tc := range []struct {
		name string
		in   t3fleet.Instance
		want error
	}{
		{"missing version: no newer fallback", t3fleet.Instance{User: "u", OSUser: "emil", BaseURL: old.URL, StateDir: old.BaseDir}, t3.ErrVersionNotInstalled},
		{"hostile OS user", t3fleet.Instance{User: "u", OSUser: "root;rm", BaseURL: old.URL, StateDir: old.BaseDir}, t3fleet.ErrInvalidName},
		{"hostile version", t3fleet.Instance{User: "u", OSUser: "emil", BaseURL: hostile.URL, StateDir: old.BaseDir}, t3.ErrBadVersion},
	} {
		_, err := m.Mint(context.Background(), tc.in)
		assert.ErrorIs(t, err, tc.want, tc.name)
	}
	_, err = m.Mint(context.Background(), t3fleet.Instance{User: "u", OSUser: "emil", BaseURL: old.URL, StateDir: "relative/dir"})
	assert.ErrorContains(t, err, "clean absolute path")
	lvl, err := t3test.ReadLedgerMax(t3test.StateDB(dir))
	require.NoError(t, err)
	assert.Equal(t, 30, lvl, "nothing touched the old instance's database")
}

func TestVersionMinterArgv(t *testing.T) {
	m, err := t3.NewVersionMinter(func(v string) (string, error) { return "/opt/t3/versions/" + v + "/bin/t3", nil },
		t3.VersionMinterOptions{RunAs: []string{"sudo", "-n", "-u", "{os_user}", "--"}})
	require.NoError(t, err)
	argv, err := m.Argv(t3fleet.Instance{User: "emil.barzin", OSUser: "emil", StateDir: "/home/emil/.t3"}, "0.0.28-nightly.20260616.571")
	require.NoError(t, err)
	assert.Equal(t, []string{"sudo", "-n", "-u", "emil", "--", "/opt/t3/versions/0.0.28-nightly.20260616.571/bin/t3",
		"auth", "pairing", "create", "--base-dir", "/home/emil/.t3", "--ttl", "5m", "--json"}, argv)

	_, err = t3.NewVersionMinter(nil, t3.VersionMinterOptions{})
	assert.Error(t, err)
	_, err = t3.NewVersionMinter(func(string) (string, error) { return "", nil }, t3.VersionMinterOptions{RunAs: []string{"sudo", "-u{os_user}"}})
	assert.Error(t, err, "placeholders are whole arguments")
}

func TestVersionMinterCLIFailure(t *testing.T) {
	inst := sideBySide{prefix: t.TempDir()}
	dir := t.TempDir()
	require.NoError(t, t3test.SeedState(dir, t3test.EraC, t3test.SeedOptions{}))
	// A server that claims 0.0.27 on a DB already migrated past it: its own
	// CLI cannot mint (no column named role), and that failure is reported.
	srv := t3test.NewServer(dir, t3test.Options{Version: "0.0.27"})
	t.Cleanup(srv.Close)
	inst.stage(t, "0.0.27")
	m, err := t3.NewVersionMinter(inst.BinFor, t3.VersionMinterOptions{})
	require.NoError(t, err)
	_, err = m.Mint(context.Background(), t3fleet.Instance{User: "u", OSUser: "emil", BaseURL: srv.URL, StateDir: srv.BaseDir})
	var ce *t3.MintCommandError
	require.True(t, errors.As(err, &ce), "got %v", err)
	assert.Equal(t, 1, ce.ExitCode)
	assert.True(t, strings.Contains(ce.Stderr, "no column named role"), ce.Stderr)
}

func ExampleNewVersionMinter() {
	// Mint with the build the instance runs, never with whatever is newest.
	binFor := func(v string) (string, error) { return "/opt/t3/versions/" + v + "/node_modules/.bin/t3", nil }
	m, err := t3.NewVersionMinter(binFor, t3.VersionMinterOptions{RunAs: []string{"sudo", "-n", "-u", "{os_user}", "--"}})
	if err != nil {
		panic(err)
	}
	argv, _ := m.Argv(t3fleet.Instance{User: "emil.barzin", OSUser: "emil", StateDir: "/home/emil/.t3"}, "0.0.30")
	fmt.Println(strings.Join(argv, " "))
	// Output: sudo -n -u emil -- /opt/t3/versions/0.0.30/node_modules/.bin/t3 auth pairing create --base-dir /home/emil/.t3 --ttl 5m --json
}
