package rollout_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
)

func TestParseFreeze(t *testing.T) {
	when := time.Date(2026, 6, 19, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		content string
		want    rollout.Freeze
	}{
		{"canary emil failed on 0.0.30\n", rollout.Freeze{Reason: "canary emil failed on 0.0.30"}},
		{"", rollout.Freeze{}},
		{"reason: r\nwho: emil\nwhen: 2026-06-19T10:00:00Z\n", rollout.Freeze{Reason: "r", Who: "emil", When: when}},
		{"reason: r\nuntil: 2026-06-19T10:00:00Z\n", rollout.Freeze{Reason: "r", Until: when}},
		{"reason: r\nwhen: yesterday\n", rollout.Freeze{Reason: `reason: r; when: yesterday (when "yesterday" is no RFC 3339 time: frozen until unfreeze)`}},
		{"reason: r\nuntil: tomorrow\n", rollout.Freeze{Reason: `reason: r; until: tomorrow (until "tomorrow" is no RFC 3339 time: frozen until unfreeze)`}},
		{"investigating\nsee ticket 12\n", rollout.Freeze{Reason: "investigating; see ticket 12"}},
		{"frozen: see ticket 12", rollout.Freeze{Reason: "frozen: see ticket 12"}},
	}
	for _, c := range cases {
		require.Equal(t, c.want, *rollout.ParseFreeze(c.content), "%q", c.content)
	}
}

func TestFreezeFileRoundTrip(t *testing.T) {
	ff := rollout.FreezeFile{Path: filepath.Join(t.TempDir(), "etc", "t3-autoupdate.freeze")}
	f, err := ff.Read()
	require.NoError(t, err)
	require.Nil(t, f)
	in := rollout.Freeze{Reason: "multi\nline reason", Who: "ops", When: time.Unix(1_780_000_000, 0).UTC(), Until: time.Unix(1_780_086_400, 0).UTC()}
	require.NoError(t, ff.Write(in))
	got, err := ff.Read()
	require.NoError(t, err)
	in.Reason = "multi line reason"
	require.Equal(t, in, *got)
	require.True(t, got.Expired(in.Until))
	require.False(t, got.Expired(in.Until.Add(-time.Second)))
	require.NoError(t, ff.Remove())
	require.NoError(t, ff.Remove())
}

func TestStateFiles(t *testing.T) {
	st := rollout.State{Dir: t.TempDir()}
	lg, err := st.LastGood()
	require.NoError(t, err)
	require.Empty(t, lg)
	require.NoError(t, st.SetLastGood(v1))
	lg, err = st.LastGood()
	require.NoError(t, err)
	require.Equal(t, v1, lg)

	require.NoError(t, st.Defer("bob", v2))
	require.Error(t, st.Defer("../etc", v2), "hostile names never reach a path")
	m, err := st.Marker("bob")
	require.NoError(t, err)
	require.Equal(t, v2, m.Target)
	require.NoError(t, st.ClearMarker("bob"))
	require.NoError(t, st.ClearMarker("bob"))
	ms, err := st.Markers()
	require.NoError(t, err)
	require.Empty(t, ms)

	require.NoError(t, st.AddDeadEnd(v2, "health check:\n boom"))
	require.NoError(t, st.AddDeadEnd(v2, "again"))
	des, err := st.DeadEnds()
	require.NoError(t, err)
	require.Equal(t, []rollout.DeadEnd{{Version: v2, Reason: "health check: boom"}}, des)

	ents, err := os.ReadDir(st.Dir)
	require.NoError(t, err)
	for _, e := range ents {
		require.NotContains(t, e.Name(), ".tmp", "no temp files left behind")
	}
}

func TestMalformedStateFilesAreLeftAlone(t *testing.T) {
	cases := []struct {
		file string
		read func(rollout.State) error
	}{
		{rollout.LastGoodFile, func(s rollout.State) error { _, err := s.LastGood(); return err }},
		{rollout.DeadEndsFile, func(s rollout.State) error { return s.AddDeadEnd(v2, "x") }},
		{rollout.JournalFile, func(s rollout.State) error { _, err := s.Journal(); return err }},
	}
	for _, c := range cases {
		st := rollout.State{Dir: t.TempDir()}
		p := filepath.Join(st.Dir, c.file)
		require.NoError(t, os.WriteFile(p, []byte("<<garbage>>\n"), 0o644))
		err := c.read(st)
		require.True(t, errors.Is(err, rollout.ErrMalformed), "%s: %v", c.file, err)
		require.Contains(t, err.Error(), p)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.Equal(t, "<<garbage>>\n", string(b), c.file)
	}
}

func TestLockRecordsHolder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	l, err := rollout.AcquireLock(context.Background(), p, "migrate-idle", 0)
	require.NoError(t, err)
	_, err = rollout.AcquireLock(context.Background(), p, "run", 150*time.Millisecond)
	var le *rollout.LockedError
	require.ErrorAs(t, err, &le)
	require.ErrorIs(t, err, rollout.ErrLocked)
	require.Contains(t, le.Holder, "command=migrate-idle")
	require.Contains(t, le.Holder, "pid=")
	require.NoError(t, l.Release())
	l2, err := rollout.AcquireLock(context.Background(), p, "run", 0)
	require.NoError(t, err)
	require.NoError(t, l2.Release())
}
