package npm

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	version "github.com/hashicorp/go-version"
)

// ErrInvalidVersion is returned (wrapped) for a version string that is not a
// plain semver version. Such a string never reaches an argv or a path.
var ErrInvalidVersion = errors.New("invalid version")

// ErrInvalidPackage is returned (wrapped) for a package name npm would refuse.
var ErrInvalidPackage = errors.New("invalid package name")

// MaxVersionLen bounds a version string; t3's nightly versions are ~30 bytes.
const MaxVersionLen = 128

var (
	// Only what a semver version needs: no '~' or '^' (ranges), no '/', no
	// spaces, no leading '-' (an argv flag) and no build metadata.
	versionCharsRE = regexp.MustCompile(`^[0-9][0-9A-Za-z.-]*$`)
	packageRE      = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$`)
)

// ValidVersion reports whether v is an exact version npm can install and a
// safe single path element: canonical semver as hashicorp/go-version prints
// it (three numeric parts, an optional pre-release such as
// "-nightly.20260616.571"), nothing else.
func ValidVersion(v string) error {
	if v == "" || len(v) > MaxVersionLen || !versionCharsRE.MatchString(v) {
		return fmt.Errorf("%w: %q", ErrInvalidVersion, v)
	}
	parsed, err := version.NewSemver(v)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidVersion, v, err)
	}
	if len(parsed.Segments()) != 3 || parsed.String() != v {
		return fmt.Errorf("%w: %q is not canonical (want %q with three parts)", ErrInvalidVersion, v, parsed.String())
	}
	return nil
}

// ValidPackage reports whether name is an npm package name ("t3",
// "@scope/t3"): lowercase, no path tricks.
func ValidPackage(name string) error {
	if len(name) > 214 || !packageRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%w: %q", ErrInvalidPackage, name)
	}
	return nil
}

// ParseVersionOutput extracts the version from what `t3 --version` prints
// ("t3 v0.0.24\n", possibly with ANSI styling) and validates it.
func ParseVersionOutput(out string) (string, error) {
	clean := ansiRE.ReplaceAllString(out, "")
	for _, f := range strings.Fields(clean) {
		v := strings.TrimPrefix(f, "v")
		if v != f || (len(f) > 0 && f[0] >= '0' && f[0] <= '9') {
			if ValidVersion(v) == nil {
				return v, nil
			}
		}
	}
	return "", fmt.Errorf("%w: no version in %q", ErrInvalidVersion, strings.TrimSpace(out))
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// packageAndBin applies the defaults to an installer's package and bin
// names and checks them: the bin name becomes one path element.
func packageAndBin(pkg, bin string) (string, string, error) {
	if pkg == "" {
		pkg = DefaultPackage
	}
	if bin == "" {
		bin = DefaultBinName
	}
	if err := ValidPackage(pkg); err != nil {
		return "", "", err
	}
	if bin != filepath.Base(bin) || strings.HasPrefix(bin, ".") {
		return "", "", fmt.Errorf("bad bin name %q", bin)
	}
	return pkg, bin, nil
}
