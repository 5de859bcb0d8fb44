package rollout_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
)

func TestCompareVersions(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"0.0.28-nightly.20260616.571", "0.0.28-nightly.20260616.571", 0},
		{"0.0.28-nightly.20260616.571", "0.0.28", -1},
		{"0.0.28-nightly.20260616.571", "0.0.27", 1},
		{"0.0.28-nightly.20260616.571", "0.0.28-nightly.20260616.572", -1},
		{"0.0.28-nightly.20260616.99", "0.0.28-nightly.20260616.571", -1}, // numeric, not lexical
		{"0.0.28-nightly.20260617.1", "0.0.28-nightly.20260616.999", 1},
		{"0.0.29-nightly.20260601.1", "0.0.28-nightly.20260616.999", 1},
		{"0.0.9", "0.0.10", -1},
		{"v0.0.24", "0.0.24", 0},
		{"0.0.100", "0.0.99", 1},
	}
	for _, c := range cases {
		require.Equal(t, c.want, rollout.CompareVersions(c.a, c.b), "%s vs %s", c.a, c.b)
	}
}

func TestGate(t *testing.T) {
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	old := now.Add(-48 * time.Hour)
	young := now.Add(-1 * time.Hour)
	dead := []string{"0.0.30-nightly.20260618.600"}
	cases := []struct {
		name    string
		current string
		target  string
		pub     time.Time
		channel string
		pinned  bool
		minAge  time.Duration
		want    error // nil = go
	}{
		{"newer nightly", "0.0.28-nightly.20260616.571", "0.0.28-nightly.20260617.580", old, "nightly", false, 0, nil},
		{"same version", "0.0.28-nightly.20260616.571", "0.0.28-nightly.20260616.571", old, "nightly", false, 0, rollout.ErrNotNewer},
		{"dist-tag moved backward", "0.0.28-nightly.20260616.571", "0.0.27-nightly.20260610.500", old, "nightly", false, 0, rollout.ErrNotNewer},
		{"build number numeric", "0.0.28-nightly.20260616.99", "0.0.28-nightly.20260616.571", old, "nightly", false, 0, nil},
		{"stable on nightly channel", "0.0.27", "0.0.28", old, "nightly", false, 0, rollout.ErrNotNightly},
		{"stable on latest channel", "0.0.27", "0.0.28", old, "latest", false, 0, nil},
		{"nightly before its release", "0.0.28-nightly.20260616.571", "0.0.28", old, "latest", false, 0, nil},
		{"release is not newer than next nightly", "0.0.28", "0.0.28-nightly.20260616.571", old, "nightly", false, 0, rollout.ErrNotNewer},
		{"dead end", "0.0.28-nightly.20260616.571", "0.0.30-nightly.20260618.600", old, "nightly", false, 0, rollout.ErrDeadEnd},
		{"dead end pinned", "0.0.28-nightly.20260616.571", "0.0.30-nightly.20260618.600", old, "", true, 0, nil},
		{"pin older", "0.0.28-nightly.20260616.571", "0.0.27", old, "", true, 0, rollout.ErrNotNewer},
		{"too young", "0.0.28-nightly.20260616.571", "0.0.28-nightly.20260617.580", young, "nightly", false, 6 * time.Hour, rollout.ErrTooYoung},
		{"old enough", "0.0.28-nightly.20260616.571", "0.0.28-nightly.20260617.580", old, "nightly", false, 6 * time.Hour, nil},
		{"unknown publish time with min-age", "0.0.28-nightly.20260616.571", "0.0.28-nightly.20260617.580", time.Time{}, "nightly", false, time.Hour, rollout.ErrTooYoung},
		{"pin ignores min-age", "0.0.28-nightly.20260616.571", "0.0.28-nightly.20260617.580", young, "", true, 6 * time.Hour, nil},
		{"nothing installed", "", "0.0.28-nightly.20260617.580", old, "nightly", false, 0, nil},
		{"garbage target", "0.0.28", "latest", old, "nightly", false, 0, rollout.ErrBadVersion},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := rollout.Gate(rollout.GateInput{
				Current: c.current, Release: rollout.Release{Version: c.target, Published: c.pub},
				Channel: c.channel, Pinned: c.pinned, DeadEnds: dead, MinAge: c.minAge, Now: now,
			})
			if c.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, c.want)
			var re *rollout.RefusedError
			require.True(t, errors.As(err, &re))
			require.NotEmpty(t, re.Reason)
		})
	}
}
