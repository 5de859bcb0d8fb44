package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/rollout"
)

// fallbackRegistry stands in for Verdaccio + npm on a machine without
// Verdaccio: "publishing" remembers a build's faults, Stage writes
// <prefix>/versions/<v>/t3 (npmtest.BinScript, as the packages ship it) and Activate switches the
// <prefix>/current link atomically, the same layout rules as npm.SideBySide.
type fallbackRegistry struct {
	prefix, cli string

	mu        sync.Mutex
	published map[string]t3test.Faults
	nightly   rollout.Release
}

func newFallbackRegistry(prefix, cli string) *fallbackRegistry {
	return &fallbackRegistry{prefix: prefix, cli: cli, published: map[string]t3test.Faults{}}
}

func (r *fallbackRegistry) publish(_ context.Context, v string, faults t3test.Faults) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published[v] = faults
	r.nightly = rollout.Release{Version: v, Published: time.Now()}
	return nil
}

func (r *fallbackRegistry) Resolve(_ context.Context, channel string) (rollout.Release, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if channel != "nightly" || r.nightly.Version == "" {
		return rollout.Release{}, fmt.Errorf("no dist-tag %s", channel)
	}
	return r.nightly, nil
}

func (r *fallbackRegistry) Current(context.Context) (string, error) {
	t, err := os.Readlink(filepath.Join(r.prefix, "current"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return filepath.Base(t), nil
}

func (r *fallbackRegistry) BinFor(v string) (string, error) {
	bin := filepath.Join(r.prefix, "versions", v, "t3")
	if _, err := os.Stat(bin); err != nil {
		return "", err
	}
	return bin, nil
}

func (r *fallbackRegistry) Stage(_ context.Context, v string) (rollout.Build, error) {
	r.mu.Lock()
	faults, ok := r.published[v]
	r.mu.Unlock()
	if !ok {
		return rollout.Build{}, fmt.Errorf("stage %s: not published", v)
	}
	dir := filepath.Join(r.prefix, "versions", v)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return rollout.Build{}, err
	}
	// The same bin script the npm packages ship: it sets T3FAKE_FAULTS only
	// for a build published with faults, so a per-user fault in the
	// unit's environment still reaches the fake.
	bin := filepath.Join(dir, "t3")
	script := npmtest.BinScript(v, npmtest.PublishOptions{CLI: r.cli, Faults: faults.String()})
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		return rollout.Build{}, err
	}
	return rollout.Build{Version: v, Dir: dir, Bin: bin}, nil
}

func (r *fallbackRegistry) Activate(_ context.Context, b rollout.Build) error {
	tmp := filepath.Join(r.prefix, ".current.tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Join("versions", b.Version), tmp); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(r.prefix, "current"))
}

func (r *fallbackRegistry) Drop(ctx context.Context, v string) error {
	if cur, _ := r.Current(ctx); cur == v {
		return fmt.Errorf("drop %s: it is current", v)
	}
	return os.RemoveAll(filepath.Join(r.prefix, "versions", v))
}
