package npm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-version"
)

// ErrEngine is a package whose engines.node range excludes the Node this
// host runs: npm installs it all the same (a warning, EBADENGINE), and the
// binary then fails when it starts. The host is at fault, not the build.
var ErrEngine = errors.New("the package needs another Node than this host runs")

// checkEngine compares the engines.node range of the installed package's
// manifest m with the Node beside npm. A range or a Node version it cannot
// read is logged and let through: the health check runs the build anyway.
func (r runner) checkEngine(ctx context.Context, m manifest) error {
	rng := strings.TrimSpace(m.Engines["node"])
	if rng == "" {
		return nil
	}
	out, err := r.exec(ctx, r.node(), "--version")
	if err != nil {
		r.logger.LogAttrs(ctx, slog.LevelWarn, "npm: cannot tell the host's Node version; engines.node not checked",
			slog.String("range", rng), slog.Any("err", err))
		return nil
	}
	node := strings.TrimSpace(string(out))
	ok, err := satisfies(node, rng)
	if err != nil {
		r.logger.LogAttrs(ctx, slog.LevelWarn, "npm: cannot read engines.node; not checked",
			slog.String("range", rng), slog.String("node", node), slog.Any("err", err))
		return nil
	}
	if !ok {
		return fmt.Errorf("%w: %s@%s needs Node %s, and this host runs %s", ErrEngine, m.Name, m.Version, rng, node)
	}
	return nil
}

// node is the Node that runs npm's packages: the one beside npm when npm is
// given by path, else the one on PATH.
func (r runner) node() string {
	if strings.ContainsRune(r.npm, filepath.Separator) {
		if n := filepath.Join(filepath.Dir(r.npm), "node"); isExecutable(n) {
			return n
		}
	}
	return "node"
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// satisfies reports whether the Node version v ("v20.20.2") is in the npm
// semver range rng, in the forms engines fields use: alternatives joined by
// "||", each a space-separated set of comparators (>=, >, <=, <, =, or none)
// on a version that may be partial (22, 22.16) or have x/* parts, caret and
// tilde ranges, hyphen ranges (A - B), and "*" or "" for any.
func satisfies(v, rng string) (bool, error) {
	have, err := version.NewVersion(strings.TrimPrefix(strings.TrimSpace(v), "v"))
	if err != nil {
		return false, fmt.Errorf("node version %q: %w", v, err)
	}
	for _, alt := range strings.Split(rng, "||") {
		ok, err := satisfiesAll(have, strings.Fields(alt))
		if err != nil {
			return false, fmt.Errorf("range %q: %w", rng, err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// satisfiesAll is one alternative: every comparator must hold.
func satisfiesAll(have *version.Version, fields []string) (bool, error) {
	for i := 0; i+1 < len(fields); i++ { // ">= 18" is ">=18"
		switch fields[i] {
		case ">=", "<=", ">", "<", "=", "^", "~":
			fields = append(fields[:i], append([]string{fields[i] + fields[i+1]}, fields[i+2:]...)...)
		}
	}
	if len(fields) == 3 && fields[1] == "-" { // hyphen range: >= low, and <= high (or < its next part)
		lo, err := partial(fields[0])
		if err != nil {
			return false, err
		}
		hi, err := partial(fields[2])
		if err != nil {
			return false, err
		}
		return !have.LessThan(lo.floor()) && hi.above(have), nil
	}
	for _, f := range fields {
		ok, err := comparator(have, f)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func comparator(have *version.Version, f string) (bool, error) {
	op := ""
	for _, p := range []string{">=", "<=", ">", "<", "=", "^", "~"} {
		if strings.HasPrefix(f, p) {
			op, f = p, strings.TrimPrefix(f, p)
			break
		}
	}
	pv, err := partial(strings.TrimPrefix(f, "v"))
	if err != nil {
		return false, err
	}
	lo := pv.floor()
	switch op {
	case ">=":
		return !have.LessThan(lo), nil
	case ">":
		return !pv.above(have), nil
	case "<=":
		return pv.above(have), nil
	case "<":
		return have.LessThan(lo), nil
	case "^":
		return !have.LessThan(lo) && have.LessThan(pv.caretCeil()), nil
	case "~":
		return !have.LessThan(lo) && have.LessThan(pv.tildeCeil()), nil
	default: // "=" or none: the version, or every version its missing parts allow
		return !have.LessThan(lo) && pv.above(have), nil
	}
}

// partialVersion is a version with n (0-3) parts given; "x" and "*" end it.
type partialVersion struct {
	parts [3]int64
	n     int
}

func partial(s string) (partialVersion, error) {
	var pv partialVersion
	if s == "" || s == "*" || s == "x" || s == "X" {
		return pv, nil
	}
	s, _, _ = strings.Cut(s, "-") // a prerelease tag does not widen an engines range
	for _, p := range strings.Split(s, ".") {
		if p == "x" || p == "X" || p == "*" {
			break
		}
		if pv.n == 3 {
			return pv, fmt.Errorf("%q has more than three parts", s)
		}
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 {
			return pv, fmt.Errorf("%q is not a version", s)
		}
		pv.parts[pv.n] = n
		pv.n++
	}
	return pv, nil
}

func (pv partialVersion) ver(a, b, c int64) *version.Version {
	return version.Must(version.NewVersion(fmt.Sprintf("%d.%d.%d", a, b, c)))
}

// floor is the lowest version pv allows.
func (pv partialVersion) floor() *version.Version {
	return pv.ver(pv.parts[0], pv.parts[1], pv.parts[2])
}

// above reports whether have is at most the highest version pv allows.
func (pv partialVersion) above(have *version.Version) bool {
	switch pv.n {
	case 0:
		return true
	case 1:
		return have.LessThan(pv.ver(pv.parts[0]+1, 0, 0))
	case 2:
		return have.LessThan(pv.ver(pv.parts[0], pv.parts[1]+1, 0))
	}
	return !pv.floor().LessThan(have)
}

// caretCeil is the first version ^pv excludes: the next change of its
// leftmost non-zero part (of the parts given).
func (pv partialVersion) caretCeil() *version.Version {
	p := pv.parts
	switch {
	case p[0] > 0 || pv.n <= 1:
		return pv.ver(p[0]+1, 0, 0)
	case p[1] > 0 || pv.n == 2:
		return pv.ver(0, p[1]+1, 0)
	}
	return pv.ver(0, 0, p[2]+1)
}

// tildeCeil is the first version ~pv excludes: the next minor when a minor
// is given, else the next major.
func (pv partialVersion) tildeCeil() *version.Version {
	if pv.n >= 2 {
		return pv.ver(pv.parts[0], pv.parts[1]+1, 0)
	}
	return pv.ver(pv.parts[0]+1, 0, 0)
}
