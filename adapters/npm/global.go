package npm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/t3fleet/t3fleet/rollout"
)

// GlobalOptions configure a Global installer; the zero value uses npm's own
// global prefix and config.
type GlobalOptions struct {
	// Prefix passed as `--prefix` to the global install; empty: npm's.
	Prefix  string
	Package string   // default DefaultPackage
	BinName string   // default DefaultBinName
	NPM     string   // default DefaultNPM
	Env     []string // appended to os.Environ() for npm
	// ProbeVersion makes Current run <global prefix>/bin/t3 --version instead
	// of `npm ls -g --json`.
	ProbeVersion bool
	Logger       *slog.Logger
}

// Global is the seed's layout: one `npm i -g <package>@<v>`, no side by side.
//
// A global install cannot hold two versions, so Stage only validates and
// records the version (the Build it returns has no Dir and no Bin: there is
// nothing to health-check before Activate), Activate runs the install over
// the running one, a rollback reinstalls last-good from the registry, and
// Drop is a no-op. Prefer SideBySide; Global exists for hosts that keep the
// seed's layout.
type Global struct {
	opts GlobalOptions
	run  runner
}

var (
	_ rollout.Installer           = (*Global)(nil)
	_ rollout.ActivationInstaller = (*Global)(nil)
)

// NewGlobal returns a Global installer; it runs nothing yet.
func NewGlobal(opts GlobalOptions) (*Global, error) {
	var err error
	if opts.Package, opts.BinName, err = packageAndBin(opts.Package, opts.BinName); err != nil {
		return nil, fmt.Errorf("global installer: %w", err)
	}
	if opts.Prefix != "" {
		abs, err := filepath.Abs(opts.Prefix)
		if err != nil {
			return nil, fmt.Errorf("global installer: %w", err)
		}
		opts.Prefix = abs
	}
	return &Global{opts: opts, run: newRunner(opts.NPM, opts.Env, opts.Logger)}, nil
}

func (g *Global) globalArgs(args ...string) []string {
	args = append(args, "-g")
	if g.opts.Prefix != "" {
		args = append(args, "--prefix", g.opts.Prefix)
	}
	return args
}

// Current returns the globally installed version, "" (and no error) when the
// package is not installed, as rollout expects.
func (g *Global) Current(ctx context.Context) (string, error) {
	if g.opts.ProbeVersion {
		bin, err := g.Bin(ctx)
		if err != nil {
			return "", fmt.Errorf("current global: %w", err)
		}
		if _, err := os.Stat(bin); errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return BinVersion(ctx, bin, g.opts.Env)
	}
	out, runErr := g.run.npmRun(ctx, g.globalArgs("ls", "--json", "--depth=0")...)
	// npm ls exits non-zero for a missing prefix or odd trees but still
	// prints JSON; read it before giving up.
	var ls struct {
		Dependencies map[string]struct {
			Version string `json:"version"`
		} `json:"dependencies"`
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(out, &ls); err != nil {
		if runErr != nil {
			return "", fmt.Errorf("current global: %w", runErr)
		}
		return "", fmt.Errorf("current global: npm ls output: %w", err)
	}
	if ls.Error != nil && ls.Error.Code == "ENOENT" {
		return "", nil // the prefix does not exist yet
	}
	dep, ok := ls.Dependencies[g.opts.Package]
	if !ok {
		if runErr != nil {
			return "", fmt.Errorf("current global: %w", runErr)
		}
		return "", nil
	}
	if err := ValidVersion(dep.Version); err != nil {
		return "", fmt.Errorf("current global: %w", err)
	}
	return dep.Version, nil
}

// Bin returns the global executable path, <prefix>/bin/t3, asking
// `npm prefix -g` when no Prefix was set.
func (g *Global) Bin(ctx context.Context) (string, error) {
	prefix := g.opts.Prefix
	if prefix == "" {
		out, err := g.run.npmRun(ctx, "prefix", "-g")
		if err != nil {
			return "", err
		}
		prefix = strings.TrimSpace(string(out))
	}
	return filepath.Join(prefix, "bin", g.opts.BinName), nil
}

// InstallsAtActivation implements rollout.ActivationInstaller: Stage
// installs nothing, Activate runs npm install -g.
func (g *Global) InstallsAtActivation() bool { return true }

// Stage validates v and returns a Build carrying only the version; it
// installs nothing (see Global).
func (g *Global) Stage(ctx context.Context, v string) (rollout.Build, error) {
	if err := ValidVersion(v); err != nil {
		return rollout.Build{}, fmt.Errorf("stage %s: %w", v, err)
	}
	g.run.logger.LogAttrs(ctx, slog.LevelInfo, "npm: global stage recorded (installs at activate)", slog.String(LogKeyVersion, v))
	return rollout.Build{Version: v}, nil
}

// Activate runs `npm install -g [--prefix P] <package>@<v>` and checks the
// result with Current. It needs the registry.
func (g *Global) Activate(ctx context.Context, b rollout.Build) error {
	if err := ValidVersion(b.Version); err != nil {
		return fmt.Errorf("activate %s: %w", b.Version, err)
	}
	args := g.globalArgs("install", "--no-audit", "--no-fund")
	args = append(args, "--", g.opts.Package+"@"+b.Version)
	if _, err := g.run.npmRun(ctx, args...); err != nil {
		return fmt.Errorf("activate %s: %w", b.Version, err)
	}
	got, err := g.installed(ctx)
	if err != nil {
		return fmt.Errorf("activate %s: %w", b.Version, err)
	}
	if got != b.Version {
		return fmt.Errorf("activate %s: %w: installed %s", b.Version, ErrVersionMismatch, got)
	}
	g.run.logger.LogAttrs(ctx, slog.LevelInfo, "npm: activated globally", slog.String(LogKeyVersion, b.Version))
	return nil
}

// installed reads the installed package.json under a known prefix (no npm
// start-up), else asks Current.
func (g *Global) installed(ctx context.Context) (string, error) {
	if g.opts.Prefix == "" {
		return g.Current(ctx)
	}
	return installedVersion(filepath.Join(g.opts.Prefix, "lib", "node_modules", g.opts.Package, "package.json"))
}

// Drop is a no-op: a global install keeps no other versions.
func (g *Global) Drop(ctx context.Context, v string) error {
	if err := ValidVersion(v); err != nil {
		return fmt.Errorf("drop %s: %w", v, err)
	}
	return nil
}
