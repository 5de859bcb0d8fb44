package statebackup

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Labels a snapshot carries. A prebump label is LabelPrebumpPrefix followed
// by the version the bump goes to.
const (
	LabelDaily         = "daily"
	LabelManual        = "manual"
	LabelPrebumpPrefix = "prebump-"
)

// TimeLayout is the time stamp in snapshot names (the seed's
// `date +%Y%m%d-%H%M%S`), always in UTC.
const TimeLayout = "20060102-150405"

// MetadataSuffix is appended to a snapshot's path to name its metadata file.
const MetadataSuffix = ".json"

var (
	labelRE = regexp.MustCompile(`^[a-z][a-z0-9]*(-[0-9A-Za-z][0-9A-Za-z.+_-]*)?$`)
	// state-<ts>.sqlite, state-<label>-<ts>.sqlite, with an optional .N
	// before the extension when two snapshots share a second.
	nameRE = regexp.MustCompile(`^state-(?:(.+)-)?(\d{8}-\d{6})(?:\.(\d+))?\.sqlite$`)
)

// PrebumpLabel returns the label of a snapshot taken before bumping to
// version.
func PrebumpLabel(version string) string { return LabelPrebumpPrefix + version }

// IsPrebump reports whether label marks a snapshot taken before a bump.
func IsPrebump(label string) bool { return strings.HasPrefix(label, LabelPrebumpPrefix) }

// ValidLabel reports whether label can be part of a snapshot name: a
// lowercase word, optionally followed by '-' and a version-like tail
// ([0-9A-Za-z.+_-], no '/'), at most 128 bytes.
func ValidLabel(label string) error {
	if len(label) > 128 || !labelRE.MatchString(label) || strings.Contains(label, "..") {
		return fmt.Errorf("%w: %q", ErrInvalidLabel, label)
	}
	return nil
}

// SnapshotName is the file name of a snapshot with label taken at t, in the
// seed's layout: state-<ts>.sqlite for daily snapshots,
// state-<label>-<ts>.sqlite otherwise (e.g. state-prebump-0.0.28-<ts>.sqlite).
// seq > 0 distinguishes snapshots taken within the same second.
func SnapshotName(label string, t time.Time, seq int) string {
	ts := t.UTC().Format(TimeLayout)
	if seq > 0 {
		ts += fmt.Sprintf(".%d", seq)
	}
	if label == LabelDaily || label == "" {
		return "state-" + ts + ".sqlite"
	}
	return "state-" + label + "-" + ts + ".sqlite"
}

// ParseSnapshotName recovers the label and time from a snapshot's file name,
// for old snapshots without metadata.
func ParseSnapshotName(name string) (label string, t time.Time, ok bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return "", time.Time{}, false
	}
	t, err := time.ParseInLocation(TimeLayout, m[2], time.UTC)
	if err != nil {
		return "", time.Time{}, false
	}
	label = m[1]
	if label == "" {
		label = LabelDaily
	}
	return label, t, true
}

// nameSeq is the .N a snapshot's file name carries for its second (0 for
// none).
func nameSeq(path string) int {
	m := nameRE.FindStringSubmatch(filepath.Base(path))
	if m == nil || m[3] == "" {
		return 0
	}
	n, _ := strconv.Atoi(m[3])
	return n
}

// metadata is the JSON file kept beside each snapshot.
type metadata struct {
	User        string    `json:"user"`
	Label       string    `json:"label"`
	Time        time.Time `json:"time"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	SchemaLevel int       `json:"schema_level"`
	Version     string    `json:"version,omitempty"`
	Source      string    `json:"source,omitempty"`
	Check       string    `json:"check,omitempty"` // "quick_check" or "integrity_check"
}

func (m metadata) snapshot(path string) Snapshot {
	return Snapshot{
		Path: path, User: m.User, Label: m.Label, Time: m.Time, Size: m.Size,
		SHA256: m.SHA256, SchemaLevel: m.SchemaLevel, Version: m.Version,
		Source: m.Source, Verified: m.Check != "",
	}
}

// maxMetadataSize bounds a metadata file (a few hundred bytes when this
// package writes it). It lies in its user's directory: a planted file of
// gigabytes would otherwise be decoded in memory by root, for every user.
const maxMetadataSize = 64 << 10

// readMetadata loads the metadata file beside a snapshot; a missing one is
// (metadata{}, false, nil).
func readMetadata(snapshotPath string) (metadata, bool, error) {
	f, err := openNoFollow(snapshotPath + MetadataSuffix)
	if err != nil {
		if os.IsNotExist(err) {
			return metadata{}, false, nil
		}
		return metadata{}, false, err
	}
	defer f.Close()
	switch fi, err := f.Stat(); {
	case err != nil:
		return metadata{}, false, err
	case !fi.Mode().IsRegular():
		return metadata{}, false, fmt.Errorf("metadata %s: %w: not a regular file", snapshotPath+MetadataSuffix, ErrUnsafePath)
	case fi.Size() > maxMetadataSize:
		return metadata{}, false, fmt.Errorf("metadata %s: %d bytes, more than %d: not read", snapshotPath+MetadataSuffix, fi.Size(), maxMetadataSize)
	}
	var m metadata
	// Bounded as well: the file is in the user's directory and can grow
	// after the Stat.
	if err := json.NewDecoder(io.LimitReader(f, maxMetadataSize)).Decode(&m); err != nil {
		return metadata{}, false, fmt.Errorf("metadata %s: %w", snapshotPath+MetadataSuffix, err)
	}
	return m, true, nil
}

// ReadSnapshot describes the snapshot file at path: from its metadata file
// when there is one, else from its name and size (Verified false).
func ReadSnapshot(path string) (Snapshot, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Snapshot{}, err
	}
	if !fi.Mode().IsRegular() {
		return Snapshot{}, fmt.Errorf("%s: %w: not a regular file", path, ErrUnsafePath)
	}
	m, ok, err := readMetadata(path)
	if err != nil {
		return Snapshot{}, err
	}
	if ok {
		s := m.snapshot(path)
		if s.Size == 0 {
			s.Size = fi.Size()
		}
		return s, nil
	}
	s := Snapshot{Path: path, Size: fi.Size(), Time: fi.ModTime().UTC(), Label: LabelManual}
	if label, t, ok := ParseSnapshotName(filepath.Base(path)); ok {
		s.Label, s.Time = label, t
	}
	return s, nil
}
