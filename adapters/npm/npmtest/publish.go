package npmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet/adapters/npm"
)

// PublishOptions say what the published t3 package's bin does. The zero
// value publishes a stand-in script that answers --version with
// "t3 v<version>" and fails anything else.
type PublishOptions struct {
	// Package name; default npm.DefaultPackage ("t3").
	Package string
	// CLI is a fake t3 executable (e.g. t3test.BuildCLI(tb)); the bin script
	// execs it with T3FAKE_VERSION=<version> and "$@".
	CLI string
	// Era and Faults are baked in as T3FAKE_ERA and T3FAKE_FAULTS when set.
	Era    string
	Faults string
	// Script, when set, is the whole bin script (it should start with #!).
	Script string
	// Engines, when set, is the package's engines.node range, as t3 declares
	// the Node versions it runs on (e.g. "^22.16 || ^23.11 || >=24.10").
	Engines string
	// Postinstall, when set, is the package's postinstall script: e.g.
	// "exit 1" for a build whose install fails after npm unpacked it.
	Postinstall string
	// ViaNPM publishes with `npm publish` (~0.6-2 s) instead of the same
	// request npm sends, made directly (~10 ms).
	ViaNPM bool
}

// PublishT3 publishes <package>@<version> under dist-tag tag (default
// "latest") with a `bin` named t3 built from opts.
func (r *Registry) PublishT3(ctx context.Context, version, tag string, opts PublishOptions) error {
	if err := npm.ValidVersion(version); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if opts.Package == "" {
		opts.Package = npm.DefaultPackage
	}
	if err := npm.ValidPackage(opts.Package); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if tag == "" {
		tag = "latest"
	}
	dir, err := os.MkdirTemp(r.path("packages"), strings.ReplaceAll(opts.Package, "/", "_")+"-"+version+"-")
	if err != nil {
		return fmt.Errorf("publish %s@%s: %w", opts.Package, version, err)
	}
	manifest := map[string]any{
		"name":    opts.Package,
		"version": version,
		"bin":     map[string]string{"t3": "t3.sh"},
		"files":   []string{"t3.sh"},
		"license": "MIT",
	}
	if opts.Postinstall != "" {
		manifest["scripts"] = map[string]string{"postinstall": opts.Postinstall}
	}
	if opts.Engines != "" {
		manifest["engines"] = map[string]string{"node": opts.Engines}
	}
	pkg, _ := json.MarshalIndent(manifest, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "package.json"), pkg, 0o644); err != nil {
		return fmt.Errorf("publish %s@%s: %w", opts.Package, version, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t3.sh"), []byte(BinScript(version, opts)), 0o755); err != nil {
		return fmt.Errorf("publish %s@%s: %w", opts.Package, version, err)
	}
	if opts.ViaNPM {
		_, err = r.NPM(ctx, dir, "publish", "--tag", tag)
	} else {
		err = r.publishHTTP(ctx, dir, manifest, tag)
	}
	if err != nil {
		return fmt.Errorf("publish %s@%s: %w", opts.Package, version, err)
	}
	return nil
}

// BinScript returns the sh script PublishT3 ships as the package's bin.
func BinScript(version string, opts PublishOptions) string {
	if opts.Script != "" {
		return opts.Script
	}
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	if opts.CLI == "" {
		fmt.Fprintf(&b, "case \"$1\" in\n--version) echo %s ;;\n*) echo %s >&2; exit 2 ;;\nesac\n",
			shQuote("t3 v"+version), shQuote("t3 stand-in "+version+": only --version"))
		return b.String()
	}
	fmt.Fprintf(&b, "T3FAKE_VERSION=%s\nexport T3FAKE_VERSION\n", shQuote(version))
	if opts.Era != "" {
		fmt.Fprintf(&b, "T3FAKE_ERA=%s\nexport T3FAKE_ERA\n", shQuote(opts.Era))
	}
	if opts.Faults != "" {
		fmt.Fprintf(&b, "T3FAKE_FAULTS=%s\nexport T3FAKE_FAULTS\n", shQuote(opts.Faults))
	}
	fmt.Fprintf(&b, "exec %s \"$@\"\n", shQuote(opts.CLI))
	return b.String()
}

// shQuote single-quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// MoveTag points dist-tag tag of t3 at version (backward too) with
// PUT /-/package/t3/dist-tags/<tag>.
func (r *Registry) MoveTag(ctx context.Context, tag, version string) error {
	return r.MoveTagOf(ctx, npm.DefaultPackage, tag, version)
}

// MoveTagOf is MoveTag for another package name.
func (r *Registry) MoveTagOf(ctx context.Context, pkg, tag, version string) error {
	if err := npm.ValidVersion(version); err != nil {
		return fmt.Errorf("move tag: %w", err)
	}
	if err := npm.ValidPackage(pkg); err != nil {
		return fmt.Errorf("move tag: %w", err)
	}
	body, _ := json.Marshal(version)
	u := r.URL + "-/package/" + url.PathEscape(pkg) + "/dist-tags/" + url.PathEscape(tag)
	status, took, err := r.put(ctx, u, body)
	if status != 0 {
		r.logger.LogAttrs(ctx, slog.LevelInfo, "npmtest: dist-tag moved", slog.String("tag", tag),
			slog.String("version", version), slog.Int("status", status), slog.Duration("took", took))
	}
	if err != nil {
		return fmt.Errorf("move tag %s to %s: %w", tag, version, err)
	}
	return nil
}

// NPM runs npm with args in dir under the registry's private environment and
// returns its stdout; each call's time is logged.
func (r *Registry) NPM(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.opts.NPM, args...)
	cmd.Dir = dir
	cmd.Env = r.Environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r.logger.LogAttrs(ctx, slog.LevelInfo, "npmtest: npm", slog.Any("args", args),
		slog.Duration("took", time.Since(start)), slog.Bool("ok", err == nil))
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("npm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
