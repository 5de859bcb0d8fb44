package rollout

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	version "github.com/hashicorp/go-version"
)

// Sentinels a refusal wraps, for callers that branch on the reason.
var (
	ErrNotNewer   = errors.New("target is not newer than current")
	ErrNotNightly = errors.New("target is not a nightly build")
	ErrDeadEnd    = errors.New("target is on the dead-end list")
	ErrTooYoung   = errors.New("target is younger than the minimum age")
	ErrBadVersion = errors.New("malformed version")
)

// RefusedError is a gate saying no: the run stops with exit 0 and one line.
type RefusedError struct {
	Target  string
	Current string
	Reason  string // one human line
	Err     error  // one of the sentinels above
}

func (e *RefusedError) Error() string { return "refused " + e.Target + ": " + e.Reason }
func (e *RefusedError) Unwrap() error { return e.Err }

// GateInput is everything the version gates look at.
type GateInput struct {
	Current  string  // the installed version ("" when nothing is installed)
	Release  Release // what the channel (or the pin) points at
	Channel  string  // e.g. "nightly"; "" with a pin
	Pinned   bool    // the operator chose Release.Version: skip shape, dead-end and age gates
	DeadEnds []string
	MinAge   time.Duration
	Now      time.Time
}

// Gate decides whether in.Release may be rolled out. It returns nil to go
// ahead, or a *RefusedError.
func Gate(in GateInput) error {
	target := in.Release.Version
	refuse := func(err error, format string, args ...any) error {
		return &RefusedError{Target: target, Current: in.Current, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	tv, err := ParseVersion(target)
	if err != nil {
		return refuse(ErrBadVersion, "%v", err)
	}
	if in.Current != "" {
		cv, err := ParseVersion(in.Current)
		if err != nil {
			return refuse(ErrBadVersion, "current: %v", err)
		}
		if !tv.GreaterThan(cv) {
			return refuse(ErrNotNewer, "%s is not newer than current %s", target, in.Current)
		}
	}
	if in.Pinned {
		return nil
	}
	if IsNightlyChannel(in.Channel) && !IsNightly(target) {
		return refuse(ErrNotNightly, "channel %s points at %s, which is not a -nightly. build", in.Channel, target)
	}
	if slices.Contains(in.DeadEnds, target) {
		return refuse(ErrDeadEnd, "%s is a dead end (failed before); pin it to retry", target)
	}
	if in.MinAge > 0 {
		if in.Release.Published.IsZero() {
			return refuse(ErrTooYoung, "publish time of %s unknown and min-age is %s", target, in.MinAge)
		}
		if age := in.Now.Sub(in.Release.Published); age < in.MinAge {
			return refuse(ErrTooYoung, "%s is %s old, min-age %s", target, age.Truncate(time.Second), in.MinAge)
		}
	}
	return nil
}

// ParseVersion parses a t3 version ("0.0.28", "0.0.28-nightly.20260616.571",
// an optional leading "v").
func ParseVersion(s string) (*version.Version, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadVersion)
	}
	v, err := version.NewSemver(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadVersion, s, err)
	}
	return v, nil
}

// CompareVersions returns -1, 0 or 1; malformed versions sort first.
func CompareVersions(a, b string) int {
	av, aerr := ParseVersion(a)
	bv, berr := ParseVersion(b)
	switch {
	case aerr != nil && berr != nil:
		return strings.Compare(a, b)
	case aerr != nil:
		return -1
	case berr != nil:
		return 1
	}
	return av.Compare(bv)
}

// IsNightly reports whether v is a nightly build (0.0.N-nightly.DATE.BUILD).
func IsNightly(v string) bool { return strings.Contains(v, "-nightly.") }

// IsNightlyChannel reports whether channel tracks nightly builds.
func IsNightlyChannel(channel string) bool { return channel == "nightly" }
