package rollout_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
)

// A state file that cannot be read fails Status with its path, but not
// before the rest is read: `updater status` is the runbook's first command,
// and the freeze and the units are what the operator needs most then.
func TestStatusShowsTheRestBesideAnUnreadableStateFile(t *testing.T) {
	cases := []struct {
		name, file, content string
		wantLine            string // besides UNREADABLE and the units
	}{
		{"journal", rollout.JournalFile, "{not json", "FROZEN: hold by ops"},
		{"cycle journal", rollout.CycleJournalFile, `{"user": "bob", "phase": "sideways"}`, "FROZEN: hold by ops"},
		{"dead ends", rollout.DeadEndsFile, "not-a-version boom\n", "FROZEN: hold by ops"},
		{"last-good", rollout.LastGoodFile, "yesterday\n", "last-good unknown (unreadable, below)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := newSim(t)
			e := sim.Engine(rollout.Options{})
			_, err := e.SetFreeze("hold", "ops", 0)
			require.NoError(t, err)
			path := filepath.Join(e.State().Dir, c.file)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			require.NoError(t, os.WriteFile(path, []byte(c.content), 0o644))

			s, err := e.Status(context.Background())
			require.ErrorIs(t, err, rollout.ErrMalformed)
			require.ErrorContains(t, err, path)
			require.Len(t, s.Instances, len(sim.Users()), "the units are read all the same")
			text := strings.Join(s.Lines(), "\n")
			require.Contains(t, text, c.wantLine)
			require.Contains(t, text, "UNREADABLE: ")
			require.Contains(t, text, path)
			require.Contains(t, text, "alice t3-serve@alice.service active version="+v1)
		})
	}
}

// A freeze file that cannot be read is an unknown freeze, never "not
// frozen": Status says so in a field an embedder can branch on, and in
// the line the operator reads.
func TestStatusFreezeUnknown(t *testing.T) {
	sim := newSim(t)
	e := sim.Engine(rollout.Options{})
	require.NoError(t, os.MkdirAll(e.Freezer().Path, 0o755)) // a directory where the file goes: unreadable

	s, err := e.Status(context.Background())
	require.Error(t, err)
	require.True(t, s.FreezeUnknown)
	require.Nil(t, s.Freeze)
	require.False(t, s.LastGoodUnknown)
	text := strings.Join(s.Lines(), "\n")
	require.Contains(t, text, "freeze unknown (unreadable, below)")
	require.NotContains(t, text, "not frozen")
}
