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
	"slices"
	"strings"

	version "github.com/hashicorp/go-version"

	"github.com/t3fleet/t3fleet/rollout"
)

// ErrNotStaged is returned (wrapped) for a version that is not staged.
var ErrNotStaged = errors.New("version not staged")

// ErrDropCurrent is returned (wrapped) by Drop for the current version.
var ErrDropCurrent = errors.New("refusing to drop the current version")

// ErrVersionMismatch is returned (wrapped) when what is installed is not the
// version asked for or recorded.
var ErrVersionMismatch = errors.New("version mismatch")

// Names inside a SideBySide prefix.
const (
	VersionsDir = "versions" // <prefix>/versions/<v>/
	CurrentLink = "current"  // <prefix>/current -> versions/<v>
	BinDir      = "bin"      // <prefix>/bin/t3 -> ../current/node_modules/.bin/t3
	stagePrefix = ".stage-"  // in-progress stages, never read as versions
	dropPrefix  = ".drop-"
)

// SideBySideOptions configure a SideBySide; the zero value installs
// DefaultPackage with the npm on PATH and npm's own config.
type SideBySideOptions struct {
	Package string   // default DefaultPackage
	BinName string   // default DefaultBinName
	NPM     string   // default DefaultNPM
	Env     []string // appended to os.Environ() for npm
	// ProbeVersion makes Current run <prefix>/bin/t3 --version and check it
	// agrees with the current link.
	ProbeVersion bool
	Logger       *slog.Logger
}

// SideBySide installs each version in its own directory under a prefix and
// switches a `current` symlink atomically:
//
//	<prefix>/versions/<v>/node_modules/.bin/t3   one per staged version
//	<prefix>/current -> versions/<v>             switched by rename(2)
//	<prefix>/bin/t3 -> ../current/node_modules/.bin/t3   stable path for units
//
// A running instance keeps its own version's files; a rollback is an
// Activate of a staged version and needs no network. One stager per prefix
// at a time (the rollout engine's lock).
type SideBySide struct {
	prefix string
	opts   SideBySideOptions
	run    runner
}

var _ rollout.Installer = (*SideBySide)(nil)

// NewSideBySide returns an installer rooted at prefix (made absolute). It
// creates nothing until Stage or Activate.
func NewSideBySide(prefix string, opts SideBySideOptions) (*SideBySide, error) {
	if prefix == "" {
		return nil, errors.New("side-by-side installer: empty prefix")
	}
	abs, err := filepath.Abs(prefix)
	if err != nil {
		return nil, fmt.Errorf("side-by-side installer: %w", err)
	}
	if opts.Package, opts.BinName, err = packageAndBin(opts.Package, opts.BinName); err != nil {
		return nil, fmt.Errorf("side-by-side installer: %w", err)
	}
	return &SideBySide{prefix: abs, opts: opts, run: newRunner(opts.NPM, opts.Env, opts.Logger)}, nil
}

// Prefix returns the absolute prefix.
func (s *SideBySide) Prefix() string { return s.prefix }

// Bin returns the stable executable path, <prefix>/bin/t3, which follows
// the current link.
func (s *SideBySide) Bin() string { return filepath.Join(s.prefix, BinDir, s.opts.BinName) }

// Dir returns where version v is (or would be) staged. v must be valid.
func (s *SideBySide) Dir(v string) (string, error) {
	if err := ValidVersion(v); err != nil {
		return "", err
	}
	return filepath.Join(s.prefix, VersionsDir, v), nil
}

func (s *SideBySide) binIn(dir string) string {
	return filepath.Join(dir, "node_modules", ".bin", s.opts.BinName)
}

// BinFor returns version v's own executable, for minting with the binary that
// matches a running instance.
func (s *SideBySide) BinFor(v string) (string, error) {
	dir, err := s.Dir(v)
	if err != nil {
		return "", fmt.Errorf("bin for %s: %w", v, err)
	}
	bin := s.binIn(dir)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("bin for %s: %w: %v", v, ErrNotStaged, err)
	}
	return bin, nil
}

func (s *SideBySide) build(v string) (rollout.Build, error) {
	bin, err := s.BinFor(v)
	if err != nil {
		return rollout.Build{}, err
	}
	return rollout.Build{Version: v, Dir: filepath.Dir(filepath.Dir(filepath.Dir(bin))), Bin: bin}, nil
}

// Current returns the version the current link points at, "" (and no error)
// when nothing is active yet, as rollout expects. With ProbeVersion it also
// runs the stable bin's --version and checks the two agree.
func (s *SideBySide) Current(ctx context.Context) (string, error) {
	v, err := s.currentLink()
	if err != nil || v == "" || !s.opts.ProbeVersion {
		return v, err
	}
	got, err := BinVersion(ctx, s.Bin(), s.opts.Env)
	if err != nil {
		return "", fmt.Errorf("current in %s: %w", s.prefix, err)
	}
	if got != v {
		return "", fmt.Errorf("current in %s: %w: link says %s, %s --version says %s", s.prefix, ErrVersionMismatch, v, s.Bin(), got)
	}
	return v, nil
}

// currentLink reads the version the current link points at, "" when there is
// no link; it runs nothing.
func (s *SideBySide) currentLink() (string, error) {
	target, err := os.Readlink(filepath.Join(s.prefix, CurrentLink))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("current in %s: %w", s.prefix, err)
	}
	v := filepath.Base(target)
	if filepath.Clean(target) != filepath.Join(VersionsDir, v) {
		return "", fmt.Errorf("current in %s: link points at %q, not %s/<version>", s.prefix, target, VersionsDir)
	}
	if err := ValidVersion(v); err != nil {
		return "", fmt.Errorf("current in %s: %w", s.prefix, err)
	}
	return v, nil
}

// Staged lists the staged versions, oldest first (semver order).
func (s *SideBySide) Staged(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.prefix, VersionsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("staged in %s: %w", s.prefix, err)
	}
	var vs []*version.Version
	for _, e := range entries {
		if !e.IsDir() || ValidVersion(e.Name()) != nil {
			continue // in-progress stages and drops start with '.'
		}
		if _, err := s.BinFor(e.Name()); err != nil {
			continue
		}
		vs = append(vs, version.Must(version.NewSemver(e.Name())))
	}
	slices.SortFunc(vs, func(a, b *version.Version) int { return a.Compare(b) })
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Original()
	}
	return out, nil
}

// Stage installs version v into <prefix>/versions/<v>/ with
// `npm install --prefix <temp> <package>@<v>` and renames the temp directory
// into place, so a crash or a failed install never leaves a directory that
// looks staged. A version already staged is returned without running npm.
func (s *SideBySide) Stage(ctx context.Context, v string) (rollout.Build, error) {
	dir, err := s.Dir(v)
	if err != nil {
		return rollout.Build{}, fmt.Errorf("stage %s: %w", v, err)
	}
	if b, err := s.build(v); err == nil {
		got, perr := installedVersion(filepath.Join(dir, "node_modules", s.opts.Package, "package.json"))
		if perr == nil && got == v {
			s.run.logger.LogAttrs(ctx, slog.LevelInfo, "npm: already staged", slog.String(LogKeyVersion, v))
			return b, nil
		}
		// Torn (a power loss after the rename) or edited: a health check
		// on it would blame the build. Staged again, unless instances run it.
		if cur, _ := s.currentLink(); cur == v {
			return rollout.Build{}, fmt.Errorf("stage %s: the active build's package.json says %q (%v): reinstall it by hand", v, got, perr)
		}
		s.run.logger.LogAttrs(ctx, slog.LevelWarn, "npm: a staged version is torn, staging it again",
			slog.String(LogKeyVersion, v), slog.String("package_json_version", got))
		if err := os.RemoveAll(dir); err != nil {
			return rollout.Build{}, fmt.Errorf("stage %s: %w", v, err)
		}
	}
	if _, err := os.Lstat(dir); err == nil {
		return rollout.Build{}, fmt.Errorf("stage %s: %s exists without %s: Drop it first", v, dir, s.binIn(dir))
	}
	versions := filepath.Join(s.prefix, VersionsDir)
	if err := os.MkdirAll(versions, 0o755); err != nil {
		return rollout.Build{}, fmt.Errorf("stage %s: %w", v, err)
	}
	s.removeLeftovers(versions, stagePrefix+v+"-")
	tmp, err := os.MkdirTemp(versions, stagePrefix+v+"-")
	if err != nil {
		return rollout.Build{}, fmt.Errorf("stage %s: %w", v, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return rollout.Build{}, fmt.Errorf("stage %s: %w", v, err)
	}
	if err := s.install(ctx, tmp, v); err != nil {
		_ = os.RemoveAll(tmp)
		return rollout.Build{}, fmt.Errorf("stage %s: %w", v, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		if b, err2 := s.build(v); err2 == nil {
			return b, nil // staged meanwhile by someone else
		}
		return rollout.Build{}, fmt.Errorf("stage %s: %w", v, err)
	}
	syncDir(versions)
	s.run.logger.LogAttrs(ctx, slog.LevelInfo, "npm: staged", slog.String(LogKeyVersion, v), slog.String("dir", dir))
	return s.build(v)
}

func (s *SideBySide) install(ctx context.Context, dir, v string) error {
	if _, err := s.run.npmRun(ctx, "install", "--prefix", dir, "--no-audit", "--no-fund",
		"--save-exact", "--", s.opts.Package+"@"+v); err != nil {
		return err
	}
	m, err := readManifest(filepath.Join(dir, "node_modules", s.opts.Package, "package.json"))
	if err != nil {
		return err
	}
	if m.Version != v {
		return fmt.Errorf("%w: npm installed %s", ErrVersionMismatch, m.Version)
	}
	if err := s.run.checkEngine(ctx, m); err != nil {
		return err
	}
	if _, err := os.Stat(s.binIn(dir)); err != nil {
		return fmt.Errorf("package %s@%s has no bin %q: %w", s.opts.Package, v, s.opts.BinName, err)
	}
	return nil
}

// manifest is what the updater reads of an installed package.json.
type manifest struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	Engines map[string]string `json:"engines"`
}

func readManifest(pkgJSON string) (manifest, error) {
	var m manifest
	b, err := os.ReadFile(pkgJSON)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", pkgJSON, err)
	}
	return m, nil
}

func installedVersion(pkgJSON string) (string, error) {
	m, err := readManifest(pkgJSON)
	return m.Version, err
}

// removeLeftovers deletes in-progress directories a crashed run left behind.
func (s *SideBySide) removeLeftovers(versions, prefix string) {
	entries, _ := os.ReadDir(versions)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) || strings.HasPrefix(e.Name(), dropPrefix) {
			_ = os.RemoveAll(filepath.Join(versions, e.Name()))
		}
	}
}

// Activate points <prefix>/current at b's version (a new symlink renamed over
// the old one, so readers see either the old or the new version) and makes
// sure <prefix>/bin/t3 follows current. It needs no network.
func (s *SideBySide) Activate(ctx context.Context, b rollout.Build) error {
	want, err := s.build(b.Version)
	if err != nil {
		return fmt.Errorf("activate %s: %w", b.Version, err)
	}
	if b.Dir != "" && filepath.Clean(b.Dir) != want.Dir {
		return fmt.Errorf("activate %s: build dir %s is not this installer's %s", b.Version, b.Dir, want.Dir)
	}
	if err := replaceSymlink(filepath.Join(VersionsDir, b.Version), filepath.Join(s.prefix, CurrentLink)); err != nil {
		return fmt.Errorf("activate %s: %w", b.Version, err)
	}
	binTarget := filepath.Join("..", CurrentLink, "node_modules", ".bin", s.opts.BinName)
	if err := os.MkdirAll(filepath.Join(s.prefix, BinDir), 0o755); err != nil {
		return fmt.Errorf("activate %s: %w", b.Version, err)
	}
	if got, err := os.Readlink(s.Bin()); err != nil || got != binTarget {
		if err := replaceSymlink(binTarget, s.Bin()); err != nil {
			return fmt.Errorf("activate %s: %w", b.Version, err)
		}
	}
	s.run.logger.LogAttrs(ctx, slog.LevelInfo, "npm: activated", slog.String(LogKeyVersion, b.Version))
	return nil
}

// Drop removes staged version v. It refuses the current version and is a
// no-op for a version that is not staged.
func (s *SideBySide) Drop(ctx context.Context, v string) error {
	dir, err := s.Dir(v)
	if err != nil {
		return fmt.Errorf("drop %s: %w", v, err)
	}
	cur, err := s.currentLink()
	if err != nil {
		return fmt.Errorf("drop %s: %w", v, err)
	}
	if cur == v {
		return fmt.Errorf("drop %s: %w", v, ErrDropCurrent)
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Rename first so the version disappears in one step even if the
	// removal is interrupted.
	aside, err := os.MkdirTemp(filepath.Join(s.prefix, VersionsDir), dropPrefix+v+"-")
	if err != nil {
		return fmt.Errorf("drop %s: %w", v, err)
	}
	if err := os.Rename(dir, filepath.Join(aside, v)); err != nil {
		_ = os.Remove(aside)
		return fmt.Errorf("drop %s: %w", v, err)
	}
	if err := os.RemoveAll(aside); err != nil {
		return fmt.Errorf("drop %s: %w", v, err)
	}
	s.run.logger.LogAttrs(ctx, slog.LevelInfo, "npm: dropped", slog.String(LogKeyVersion, v))
	return nil
}

// replaceSymlink makes link point at target atomically: a symlink at a temp
// name in the same directory, renamed over link, then the directory synced.
func replaceSymlink(target, link string) error {
	dir := filepath.Dir(link)
	tmp, err := os.MkdirTemp(dir, ".link-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	tmpLink := filepath.Join(tmp, "l")
	if err := os.Symlink(target, tmpLink); err != nil {
		return err
	}
	// The link moves to link's directory, where target is relative to.
	if err := os.Rename(tmpLink, link); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
}
