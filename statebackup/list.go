package statebackup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// List returns t's snapshots, newest first. Snapshots without metadata
// (taken by the seed's scripts) are listed from their names, Verified false.
// Symlinks, directories and files that fail to describe themselves are
// skipped.
func (s *Store) List(ctx context.Context, t Target) ([]Snapshot, error) {
	dir, err := s.UserDir(t.User)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t.User, err)
	}
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t.User, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("list %s: %s: %w: not a directory", t.User, dir, ErrUnsafePath)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t.User, err)
	}
	var out []Snapshot
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("list %s: %w", t.User, err)
		}
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, "state-") || !strings.HasSuffix(name, ".sqlite") {
			continue
		}
		snap, err := ReadSnapshot(filepath.Join(dir, name))
		if err != nil {
			s.logger().Warn("snapshot skipped", LogKeyUser, t.User, LogKeySnapshot, name, "err", err)
			continue
		}
		if snap.User == "" {
			snap.User = t.User
		}
		out = append(out, snap)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		if a, b := nameSeq(out[i].Path), nameSeq(out[j].Path); a != b {
			return a > b // .10 is newer than .9, .1 than the plain name
		}
		return out[i].Path > out[j].Path
	})
	return out, nil
}

// takenAt is the time a new snapshot of t records: now, or a millisecond
// after t's newest snapshot when the clock reads earlier (stepped back), so
// that the newest listed is always the one taken last: LatestPrebump
// restores it and Prune keeps it.
func (s *Store) takenAt(ctx context.Context, t Target) (time.Time, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	snaps, err := s.List(ctx, t)
	if err != nil {
		return time.Time{}, err
	}
	if len(snaps) > 0 && !now.After(snaps[0].Time) {
		s.logger().Warn("clock reads no later than the newest snapshot; the new one is dated just after it",
			LogKeyUser, t.User, LogKeySnapshot, snaps[0].Path, "now", now, "newest", snaps[0].Time)
		now = snaps[0].Time.UTC().Add(time.Millisecond)
	}
	return now, nil
}

// LatestPrebump returns t's newest prebump snapshot, or ErrNoSnapshot.
func (s *Store) LatestPrebump(ctx context.Context, t Target) (Snapshot, error) {
	snaps, err := s.List(ctx, t)
	if err != nil {
		return Snapshot{}, err
	}
	for _, sn := range snaps {
		if IsPrebump(sn.Label) {
			return sn, nil
		}
	}
	return Snapshot{}, fmt.Errorf("latest prebump %s: %w", t.User, ErrNoSnapshot)
}

// retentionClass groups snapshots that count against the same keep: all
// prebump snapshots together, every other label on its own.
func retentionClass(label string) string {
	if IsPrebump(label) {
		return LabelPrebumpPrefix
	}
	return label
}

// Prune keeps the newest keep snapshots of each kind (daily, prebump,
// manual... counted apart) and deletes the rest with their metadata. The
// newest prebump snapshot is never deleted. keep <= 0 means DefaultKeep.
func (s *Store) Prune(ctx context.Context, t Target, keep int) error {
	if keep <= 0 {
		keep = DefaultKeep
	}
	snaps, err := s.List(ctx, t)
	if err != nil {
		return fmt.Errorf("prune %s: %w", t.User, err)
	}
	seen := map[string]int{}
	var errs []error
	for _, sn := range snaps { // newest first
		class := retentionClass(sn.Label)
		seen[class]++
		if seen[class] <= keep {
			continue
		}
		for _, p := range []string{sn.Path + MetadataSuffix, sn.Path} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		s.logger().Info("snapshot pruned", LogKeyUser, t.User, LogKeySnapshot, sn.Path)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune %s: %w", t.User, err)
	}
	return nil
}
