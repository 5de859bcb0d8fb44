package rollout

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet"
)

// Default paths, seed-compatible.
const (
	DefaultStateDir   = "/var/lib/t3-autoupdate"
	DefaultFreezeFile = "/etc/t3-autoupdate.freeze"
)

// Names inside the state directory.
const (
	LastGoodFile = "last-good"
	DeferredDir  = "deferred"
	DeadEndsFile = "dead-ends"
	JournalFile  = "journal.json"
	LockFile     = "lock"
)

// ErrMalformed is wrapped by every error about a state file that cannot be
// parsed. The file is left as it is for the operator to inspect.
var ErrMalformed = errors.New("malformed state file")

// State is the updater's state directory:
//
//	<dir>/last-good          the version known to work (one line)
//	<dir>/deferred/<user>    a deferral marker: the version that user still needs
//	<dir>/dead-ends          versions that failed, one per line ("<version> <reason>")
//	<dir>/journal.json       the run in progress (see Journal)
//	<dir>/lock               the lock file (see Lock)
//
// Every write is temp file + fsync + rename + directory fsync.
type State struct {
	Dir string
}

func (s State) path(name string) string { return filepath.Join(s.Dir, name) }

// LastGood returns the last-good version, "" when none is recorded.
func (s State) LastGood() (string, error) {
	b, err := os.ReadFile(s.path(LastGoodFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read last-good: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", nil
	}
	if _, err := ParseVersion(v); err != nil {
		return "", fmt.Errorf("last-good %s: %w (%v)", s.path(LastGoodFile), ErrMalformed, err)
	}
	return v, nil
}

// SetLastGood records v as last-good.
func (s State) SetLastGood(v string) error {
	return WriteFileAtomic(s.path(LastGoodFile), []byte(v+"\n"), 0o644)
}

// Marker is a deferral marker: User still runs an older build and needs Target.
type Marker struct {
	User    string
	Target  string
	Written time.Time // the file's modification time (see DeferSince)
}

// markersByUser is Markers keyed by user.
func (s State) markersByUser() (map[string]Marker, error) {
	markers, err := s.Markers()
	byUser := make(map[string]Marker, len(markers))
	for _, mk := range markers {
		byUser[mk.User] = mk
	}
	return byUser, err
}

// Markers lists the deferral markers, sorted by user.
func (s State) Markers() ([]Marker, error) {
	dir := s.path(DeferredDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list markers: %w", err)
	}
	var out []Marker
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || t3fleet.ValidOSUser(e.Name()) != nil {
			continue
		}
		m, err := s.Marker(e.Name())
		if err != nil {
			return nil, err
		}
		if m != nil {
			out = append(out, *m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}

// Marker returns user's deferral marker, nil when there is none.
func (s State) Marker(user string) (*Marker, error) {
	if err := t3fleet.ValidOSUser(user); err != nil {
		return nil, fmt.Errorf("marker: %w", err)
	}
	p := filepath.Join(s.path(DeferredDir), user)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read marker %s: %w", user, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("stat marker %s: %w", user, err)
	}
	return &Marker{User: user, Target: strings.TrimSpace(string(b)), Written: fi.ModTime()}, nil
}

// Defer writes user's deferral marker pointing at target.
func (s State) Defer(user, target string) error {
	if err := t3fleet.ValidOSUser(user); err != nil {
		return fmt.Errorf("defer: %w", err)
	}
	dir := s.path(DeferredDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("defer %s: %w", user, err)
	}
	return WriteFileAtomic(filepath.Join(dir, user), []byte(target+"\n"), 0o644)
}

// DeferSince writes user's deferral marker, as Defer does, for a unit
// that has been active since activeSince (zero: unknown). The marker is
// dated no earlier than that start: a marker is settled by a start after
// it, and a clock stepped back since the unit started would otherwise date
// the marker before a start that was no restart.
func (s State) DeferSince(user, target string, activeSince time.Time) error {
	if err := s.Defer(user, target); err != nil {
		return err
	}
	if activeSince.IsZero() {
		return nil
	}
	p := filepath.Join(s.path(DeferredDir), user)
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("defer %s: %w", user, err)
	}
	if fi.ModTime().After(activeSince) {
		return nil
	}
	// The next whole second: a file system with coarse times keeps it.
	at := activeSince.Truncate(time.Second).Add(time.Second)
	if err := os.Chtimes(p, at, at); err != nil {
		return fmt.Errorf("defer %s: %w", user, err)
	}
	if err := syncFile(p); err != nil {
		return fmt.Errorf("defer %s: %w", user, err)
	}
	return nil
}

// ClearMarker removes user's deferral marker; no marker is not an error.
func (s State) ClearMarker(user string) error {
	if err := t3fleet.ValidOSUser(user); err != nil {
		return fmt.Errorf("clear marker: %w", err)
	}
	dir := s.path(DeferredDir)
	err := os.Remove(filepath.Join(dir, user))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clear marker %s: %w", user, err)
	}
	return syncDir(dir)
}

// DeadEnd is a version that failed, and why.
type DeadEnd struct {
	Version string
	Reason  string
}

// DeadEnds lists the dead-end versions in the order they were added.
func (s State) DeadEnds() ([]DeadEnd, error) {
	b, err := os.ReadFile(s.path(DeadEndsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dead-ends: %w", err)
	}
	var out []DeadEnd
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, reason, _ := strings.Cut(line, " ")
		if _, err := ParseVersion(v); err != nil {
			return nil, fmt.Errorf("dead-ends %s: %w (%v)", s.path(DeadEndsFile), ErrMalformed, err)
		}
		out = append(out, DeadEnd{Version: v, Reason: strings.TrimSpace(reason)})
	}
	return out, nil
}

// DeadEndVersions returns just the versions of DeadEnds.
func (s State) DeadEndVersions() ([]string, error) {
	des, err := s.DeadEnds()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(des))
	for i, d := range des {
		out[i] = d.Version
	}
	return out, nil
}

// AddDeadEnd appends v (once) with a one-line reason.
func (s State) AddDeadEnd(v, reason string) error {
	des, err := s.DeadEnds()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, d := range des {
		if d.Version == v {
			return nil
		}
		fmt.Fprintf(&buf, "%s %s\n", d.Version, d.Reason)
	}
	fmt.Fprintf(&buf, "%s %s\n", v, oneLine(reason))
	return WriteFileAtomic(s.path(DeadEndsFile), buf.Bytes(), 0o644)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// WriteFileAtomic writes data to path through a temp file in the same
// directory: write, fsync, rename, fsync the directory. A crash leaves either
// the old file or the new one.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

func mkdirState(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
