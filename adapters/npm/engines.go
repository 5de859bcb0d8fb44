package npm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"
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
// semver range rng, as engines fields write them ("^22.16 || >=24.10",
// "18 - 20", "20.x", ">= 18"): Masterminds/semver reads npm's range syntax.
func satisfies(v, rng string) (bool, error) {
	have, err := semver.NewVersion(strings.TrimPrefix(strings.TrimSpace(v), "v"))
	if err != nil {
		return false, fmt.Errorf("node version %q: %w", v, err)
	}
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return false, fmt.Errorf("range %q: %w", rng, err)
	}
	return c.Check(have), nil
}
