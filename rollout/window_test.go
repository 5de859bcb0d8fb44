package rollout_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/rollout"
)

func TestWindowContains(t *testing.T) {
	at := func(h, m, s int) time.Time { return time.Date(2026, 11, 24, h, m, s, 0, time.Local) }
	tests := []struct {
		window string
		at     time.Time
		want   bool
	}{
		{"01:00-06:00", at(0, 59, 59), false},
		{"01:00-06:00", at(1, 0, 0), true},
		{"01:00-06:00", at(3, 30, 0), true},
		{"01:00-06:00", at(5, 59, 59), true},
		{"01:00-06:00", at(6, 0, 0), false},
		{"01:00-06:00", at(23, 0, 0), false},
		{"22:00-04:00", at(21, 59, 59), false},
		{"22:00-04:00", at(22, 0, 0), true},
		{"22:00-04:00", at(23, 59, 59), true},
		{"22:00-04:00", at(0, 0, 0), true},
		{"22:00-04:00", at(3, 59, 59), true},
		{"22:00-04:00", at(4, 0, 0), false},
		{"22:00-04:00", at(12, 0, 0), false},
		{"00:00-24:00", at(0, 0, 0), true},
		{"00:00-24:00", at(23, 59, 59), true},
		{"always", at(13, 0, 0), true},
		{"23:30-00:30", at(0, 15, 0), true},
		{"23:30-00:30", at(0, 30, 0), false},
	}
	for _, tt := range tests {
		w, err := rollout.ParseWindow(tt.window)
		require.NoError(t, err, tt.window)
		require.Equal(t, tt.want, w.Contains(tt.at), "%s at %s", tt.window, tt.at.Format("15:04:05"))
	}
}

func TestWindowZeroIsDefault(t *testing.T) {
	var w rollout.Window
	require.Equal(t, "01:00-06:00", w.String())
	require.True(t, w.Contains(time.Date(2026, 1, 1, 1, 0, 0, 0, time.Local)))
	require.False(t, w.Contains(time.Date(2026, 1, 1, 6, 0, 0, 0, time.Local)))
}

func TestParseWindowRejects(t *testing.T) {
	for _, s := range []string{"", "1-6", "01:00", "01:00-01:00", "25:00-02:00", "01:60-02:00", "24:00-02:00", "01:00-24:01", "a:bc-01:00", "1:0-2:00"} {
		_, err := rollout.ParseWindow(s)
		require.Error(t, err, s)
	}
	w, err := rollout.ParseWindow(" 22:00-04:00 ")
	require.NoError(t, err)
	require.Equal(t, "22:00-04:00", w.String())
}
