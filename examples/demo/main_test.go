package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
)

// TestDemo runs the whole demo and checks the narration's key lines, in
// order, and that it leaves nothing behind.
func TestDemo(t *testing.T) {
	t.Run("auto", func(t *testing.T) { testDemo(t, nil, "") })
	t.Run("fake registry", func(t *testing.T) {
		testDemo(t, []string{"-registry", "fake"}, "registry: in-process fake")
	})
}

func testDemo(t *testing.T, args []string, wantRegistry string) {
	if testing.Short() {
		t.Skip("runs a fleet of processes")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out, errb bytes.Buffer
	t0 := time.Now()
	code := run(context.Background(), args, &out, &errb)
	took := time.Since(t0)
	t.Logf("demo took %s\n%s", took.Round(time.Millisecond), out.String())
	require.Equal(t, 0, code, errb.String())
	require.Less(t, took, time.Minute, "the demo runs in under a minute")

	switch {
	case wantRegistry != "":
		require.Contains(t, out.String(), wantRegistry)
	case npmtest.RequireReal():
		require.Contains(t, out.String(), "registry: a real Verdaccio")
	}
	steps := []string{
		`deferred carol: busy \(1 turn\(s\) in flight\)`,
		`=> done: 0\.0\.27-nightly\.20260601\.1 -> 0\.0\.31-nightly\.20260616\.571 restarted=2 deferred=1`,
		`carol still deferred: 1 turn\(s\) in flight`,
		`backed up carol -> state-pre-migrate-idle-`,
		`=> migrate-idle: migrated=1 \[carol\]`,
		`carol now serves 0\.0\.31-nightly\.20260616\.571, schema 32`,
		`HEALTH-CHECK FAILED \(.*Migration .*failed`,
		`3 of 3 instances untouched`,
		`bob: pairing through the dispatch FAILED`,
		`restored bob's database from state-prebump-0\.0\.33-nightly\.20260618\.700-`,
		`activated 0\.0\.31-nightly\.20260616\.571`,
		`=> rolled back 0\.0\.33-nightly\.20260618\.700: canary bob failed`,
		`bob serves 0\.0\.31-nightly\.20260616\.571, schema 32`,
		`=> FROZEN: canary bob failed`,
		`watchdog alice: failing failures=1`,
		`watchdog alice: failing failures=2`,
		`watchdog: restarting alice on 0\.0\.31-nightly\.20260616\.571`,
		`watchdog alice: restarted`,
		`alice serves 0\.0\.31-nightly\.20260616\.571 again`,
		`== 6\. updater status ==`,
		`current 0\.0\.31-nightly\.20260616\.571, last-good 0\.0\.31-nightly\.20260616\.571`,
		`FROZEN: canary bob failed`,
		`dead end 0\.0\.32-nightly\.20260617\.600: health check`,
		`dead end 0\.0\.33-nightly\.20260618\.700: canary bob failed`,
		`alice t3-serve@alice\.service active version=0\.0\.31-nightly\.20260616\.571 `, // each instance's own answer
		`bob t3-serve@bob\.service active version=0\.0\.31-nightly\.20260616\.571 `,
		`carol t3-serve@carol\.service active version=0\.0\.31-nightly\.20260616\.571 `,
		`SUSPECT build 0\.0\.31-nightly\.20260616\.571: 1 watchdog restart`,
		`demo finished in`,
	}
	rest := out.String()
	for _, s := range steps {
		loc := regexp.MustCompile(s).FindStringIndex(rest)
		require.NotNil(t, loc, "missing (in order): %s", s)
		rest = rest[loc[1]:]
	}
	require.NotContains(t, out.String(), "ROLLBACK FAILED")
	require.NotContains(t, out.String(), "WATCHDOG-EXHAUSTED")
	require.False(t, strings.Contains(out.String(), "carol restarted") && strings.Index(out.String(), "carol restarted") < strings.Index(out.String(), "carol's turn finishes"),
		"carol is never restarted while busy")

	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	require.Empty(t, names, "the demo removes its temp dir")
}
