package rollout_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
)

// A line longer than bufio.Scanner's 64 KiB limit, which an operator's
// pasted log or comment can be: the files the updater reads whole are read
// to their end, every line looked at.
var longLine = strings.Repeat("x", 70<<10)

func TestFreezeWithALongLineIsNoTimedFreeze(t *testing.T) {
	// An expiry before a line that is no field: the file is not the
	// updater's own format, so it freezes until an unfreeze, whatever
	// comes after.
	f := rollout.ParseFreeze("reason: r\nuntil: 2026-06-19T10:00:00Z\n" + longLine + "\n")
	require.True(t, f.Until.IsZero(), "frozen until unfreeze, not until 2026-06-19")
	require.Contains(t, f.Reason, "until: 2026-06-19T10:00:00Z")
}

func TestDeadEndAfterALongLineIsKept(t *testing.T) {
	st := rollout.State{Dir: t.TempDir()}
	require.NoError(t, os.WriteFile(filepath.Join(st.Dir, rollout.DeadEndsFile),
		[]byte("# "+longLine+"\n"+v2+" canary failed\n"), 0o644))
	des, err := st.DeadEnds()
	require.NoError(t, err)
	require.Equal(t, []rollout.DeadEnd{{Version: v2, Reason: "canary failed"}}, des)
}

func TestWatchdogRestartAfterALongLineIsKept(t *testing.T) {
	st := rollout.State{Dir: t.TempDir()}
	when := time.Date(2026, 6, 19, 10, 0, 0, 0, time.UTC)
	require.NoError(t, os.WriteFile(filepath.Join(st.Dir, rollout.WatchdogRestartsFile),
		[]byte(longLine+"\n"+when.Format(time.RFC3339)+" "+v2+" bob -\n"), 0o644))
	rs, err := st.WatchdogRestarts()
	require.ErrorIs(t, err, rollout.ErrMalformed, "the long line is reported")
	require.Equal(t, []rollout.WatchdogRestart{{Time: when, Version: v2, User: "bob"}}, rs)
}
