package rollout

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrFrozen is wrapped when a run stops because of a freeze.
var ErrFrozen = errors.New("frozen")

// Freeze is the content of the freeze file.
type Freeze struct {
	Reason string
	Who    string
	When   time.Time // zero when unknown (a seed plain-text freeze)
	Until  time.Time // zero: until unfrozen
}

// Expired reports whether the freeze has an expiry that is past at now.
func (f Freeze) Expired(now time.Time) bool { return !f.Until.IsZero() && !now.Before(f.Until) }

// String is the one-line description used after "FROZEN".
func (f Freeze) String() string {
	s := f.Reason
	if s == "" {
		s = "(no reason given)"
	}
	if f.Who != "" {
		s += " by " + f.Who
	}
	if !f.When.IsZero() {
		s += " at " + f.When.UTC().Format(time.RFC3339)
	}
	if !f.Until.IsZero() {
		s += " until " + f.Until.UTC().Format(time.RFC3339)
	}
	return s
}

// FreezeFile is the freeze file. It lives outside the state directory, so no
// rollback restores it away.
//
// Format: "reason: ", "who: ", "when: ", "until: " lines (RFC 3339 times).
// A file in any other shape (the seed writes plain text) is a freeze whose
// reason is its whole content.
type FreezeFile struct {
	Path string
}

// Read returns the freeze, or nil when the file does not exist.
func (ff FreezeFile) Read() (*Freeze, error) {
	b, err := os.ReadFile(ff.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read freeze %s: %w", ff.Path, err)
	}
	return ParseFreeze(string(b)), nil
}

// ParseFreeze parses a freeze file's content; it never fails, since any
// content means frozen.
func ParseFreeze(content string) *Freeze {
	var f Freeze
	structured := false
	for line := range strings.Lines(content) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		var err error
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "reason":
			f.Reason = v
		case "who":
			f.Who = v
		case "when":
			f.When, err = time.Parse(time.RFC3339, v)
		case "until":
			f.Until, err = time.Parse(time.RFC3339, v)
		default:
			ok = false
		}
		if err != nil {
			// Meant as an expiry or a time and not one: it must not look
			// like one either, at 3 a.m.
			return &Freeze{Reason: plainReason(content) + fmt.Sprintf(" (%s %q is no RFC 3339 time: frozen until unfreeze)", strings.TrimSpace(k), v)}
		}
		if !ok {
			return &Freeze{Reason: plainReason(content)}
		}
		structured = true
	}
	if !structured {
		return &Freeze{Reason: plainReason(content)}
	}
	return &f
}

// plainReason is a freeze file's whole content as one line ("; " between
// its lines), as the FROZEN line and status print it.
func plainReason(content string) string {
	var lines []string
	for _, l := range strings.Split(content, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

// Write freezes (atomically).
func (ff FreezeFile) Write(f Freeze) error {
	var b strings.Builder
	fmt.Fprintf(&b, "reason: %s\n", oneLine(f.Reason))
	if f.Who != "" {
		fmt.Fprintf(&b, "who: %s\n", oneLine(f.Who))
	}
	if !f.When.IsZero() {
		fmt.Fprintf(&b, "when: %s\n", f.When.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		fmt.Fprintf(&b, "until: %s\n", f.Until.UTC().Format(time.RFC3339))
	}
	if err := WriteFileAtomic(ff.Path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	return nil
}

// Remove unfreezes; no freeze is not an error. The directory is synced, so
// an unfreeze survives a power loss as the freeze's write does.
func (ff FreezeFile) Remove() error {
	err := os.Remove(ff.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unfreeze: %w", err)
	}
	if err := syncDir(filepath.Dir(ff.Path)); err != nil {
		return fmt.Errorf("unfreeze: %w", err)
	}
	return nil
}
