package rollout

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultDrainWindow is when the idle drainer may restart units: 01:00 to
// 06:00 local time, the seed's night.
var DefaultDrainWindow = Window{Start: 1 * time.Hour, End: 6 * time.Hour}

// AlwaysWindow is open the whole day.
var AlwaysWindow = Window{Start: 0, End: 24 * time.Hour}

// Window is a daily span of local wall-clock time, [Start, End) as offsets
// from midnight. An End before Start wraps past midnight (22:00-04:00). The
// zero Window stands for DefaultDrainWindow; 00:00-24:00 is always open.
type Window struct {
	Start, End time.Duration
}

// ParseWindow reads "HH:MM-HH:MM" (24:00 allowed as an end), or "always".
func ParseWindow(s string) (Window, error) {
	s = strings.TrimSpace(s)
	if s == "always" {
		return AlwaysWindow, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return Window{}, fmt.Errorf("window %q: want HH:MM-HH:MM", s)
	}
	start, err := parseClock(a)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	end, err := parseClock(b)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	if start == 24*time.Hour {
		return Window{}, fmt.Errorf("window %q: a window cannot start at 24:00", s)
	}
	if start == end {
		return Window{}, fmt.Errorf("window %q: empty (use 00:00-24:00 or always for the whole day)", s)
	}
	return Window{Start: start, End: end}, nil
}

func parseClock(s string) (time.Duration, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || len(h) == 0 || len(h) > 2 || len(m) != 2 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

func (w Window) orDefault() Window {
	if w == (Window{}) {
		return DefaultDrainWindow
	}
	return w
}

// Contains reports whether t's local wall-clock time lies in the window.
func (w Window) Contains(t time.Time) bool {
	w = w.orDefault()
	h, m, s := t.Clock()
	at := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second +
		time.Duration(t.Nanosecond())
	if w.Start < w.End {
		return at >= w.Start && at < w.End
	}
	return at >= w.Start || at < w.End
}

// String renders the window as ParseWindow reads it.
func (w Window) String() string {
	w = w.orDefault()
	f := func(d time.Duration) string {
		return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return f(w.Start) + "-" + f(w.End)
}
