package rollout

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet"
)

// Watchdog restart history, kept in the updater's state directory (not on
// the watchdog's tmpfs) so `updater status` can name suspect builds.
const (
	WatchdogRestartsFile = "watchdog-restarts"
	// DefaultSuspectWithin: a build restarted by the watchdog within this
	// long of its rollout is suspect.
	DefaultSuspectWithin = 24 * time.Hour
	// watchdogHistory bounds the file: older lines are dropped on write.
	watchdogHistory = 30 * 24 * time.Hour
)

// WatchdogRestart is one restart the watchdog made.
type WatchdogRestart struct {
	Time      time.Time
	Version   string // the build the unit ran
	User      string
	RolledOut time.Time // when Version became last-good; zero when unknown
}

// RecordWatchdogRestart appends r to the history, dropping lines older than
// 30 days. Lines: "<time> <version or -> <user> <rolled-out or ->".
func (s State) RecordWatchdogRestart(r WatchdogRestart) error {
	rs, err := s.WatchdogRestarts()
	if err != nil && !errors.Is(err, ErrMalformed) {
		return err
	}
	rs = append(rs, r)
	var buf bytes.Buffer
	for _, x := range rs {
		if r.Time.Sub(x.Time) > watchdogHistory {
			continue
		}
		ro := "-"
		if !x.RolledOut.IsZero() {
			ro = x.RolledOut.UTC().Format(time.RFC3339)
		}
		// The version is what the user's instance answered: one that is
		// not a version (a newline in it would forge other users'
		// records) is recorded as unknown.
		v := x.Version
		if _, err := ParseVersion(v); err != nil {
			v = "-"
		}
		fmt.Fprintf(&buf, "%s %s %s %s\n", x.Time.UTC().Format(time.RFC3339), v, x.User, ro)
	}
	return WriteFileAtomic(s.path(WatchdogRestartsFile), buf.Bytes(), 0o644)
}

// WatchdogRestarts reads the history, oldest first. Unreadable lines are
// skipped and reported as ErrMalformed alongside what could be read.
func (s State) WatchdogRestarts() ([]WatchdogRestart, error) {
	b, err := os.ReadFile(s.path(WatchdogRestartsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read watchdog restarts: %w", err)
	}
	var out []WatchdogRestart
	var bad int
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			bad++
			continue
		}
		t, err := time.Parse(time.RFC3339, f[0])
		if err != nil {
			bad++
			continue
		}
		r := WatchdogRestart{Time: t, Version: f[1], User: f[2]}
		if r.Version == "-" {
			r.Version = ""
		}
		if f[3] != "-" {
			if r.RolledOut, err = time.Parse(time.RFC3339, f[3]); err != nil {
				bad++
				continue
			}
		}
		out = append(out, r)
	}
	if bad > 0 {
		return out, fmt.Errorf("watchdog restarts: %w: %d bad lines", ErrMalformed, bad)
	}
	return out, nil
}

// SuspectBuild is a build the watchdog had to restart soon after its rollout.
type SuspectBuild struct {
	Version   string
	RolledOut time.Time
	Restarts  int
	Users     []string
	Last      time.Time
}

// SuspectBuilds groups the restarts that happened within `within` of their
// build's rollout, by version, newest rollout first.
func SuspectBuilds(rs []WatchdogRestart, within time.Duration) []SuspectBuild {
	if within <= 0 {
		within = DefaultSuspectWithin
	}
	by := map[string]*SuspectBuild{}
	for _, r := range rs {
		if r.Version == "" || r.RolledOut.IsZero() || r.Time.Before(r.RolledOut) || r.Time.Sub(r.RolledOut) > within {
			continue
		}
		sb := by[r.Version]
		if sb == nil {
			sb = &SuspectBuild{Version: r.Version, RolledOut: r.RolledOut}
			by[r.Version] = sb
		}
		sb.Restarts++
		if !slices.Contains(sb.Users, r.User) {
			sb.Users = append(sb.Users, r.User)
		}
		if r.Time.After(sb.Last) {
			sb.Last = r.Time
		}
	}
	out := make([]SuspectBuild, 0, len(by))
	for _, sb := range by {
		sort.Strings(sb.Users)
		out = append(out, *sb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RolledOut.After(out[j].RolledOut) })
	return out
}

// String is the line `updater status` prints. Version and users are read
// back from the watchdog's file: t3fleet.Printable.
func (b SuspectBuild) String() string {
	return fmt.Sprintf("SUSPECT build %s: %d watchdog restart(s) within %s of its rollout at %s (users: %s; last %s)",
		t3fleet.Printable(b.Version), b.Restarts, DefaultSuspectWithin, b.RolledOut.UTC().Format(time.RFC3339),
		strings.Join(printableEach(b.Users), " "), b.Last.UTC().Format(time.RFC3339))
}

// printableEach is ss, each through t3fleet.Printable, for a list joined
// into one line.
func printableEach(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = t3fleet.Printable(s)
	}
	return out
}

// DrainWatchdogLines are the status lines of the idle drainer and the
// watchdog: deferral markers older than staleAfter (zero: the default) and
// suspect builds. `updater status` prints them after Status.Lines.
func (e *Engine) DrainWatchdogLines(staleAfter time.Duration) ([]string, error) {
	st := e.State()
	now := e.now()
	var out []string
	markers, err := st.Markers()
	if err != nil {
		return nil, err
	}
	if staleAfter <= 0 {
		staleAfter = DefaultStaleMarkerAge
	}
	for _, m := range StaleMarkers(markers, now, staleAfter) {
		// The marker's content is read back as found: t3fleet.Printable.
		out = append(out, fmt.Sprintf("STALE deferral %s -> %s: waiting since %s (over %s); check its idle gate",
			m.User, t3fleet.Printable(m.Target), m.Written.UTC().Format(time.RFC3339), staleAfter))
	}
	rs, err := st.WatchdogRestarts()
	if err != nil && !errors.Is(err, ErrMalformed) {
		return out, err
	}
	for _, sb := range SuspectBuilds(rs, DefaultSuspectWithin) {
		out = append(out, sb.String())
	}
	return out, nil
}
