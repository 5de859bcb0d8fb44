package npm_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/npm"
	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
	"github.com/t3fleet/t3fleet/rollout"
)

// TestSideBySide stages two versions from a real registry, switches between
// them, then switches back with the registry gone.
func TestSideBySide(t *testing.T) {
	t.Parallel() // each has its own registry; npm calls mostly wait
	ctx := context.Background()
	reg := newFleetRegistry(t)
	prefix := filepath.Join(t.TempDir(), "t3")
	inst, err := npm.NewSideBySide(prefix, npm.SideBySideOptions{Env: reg.Env(), Logger: npmtest.Logger(t)})
	require.NoError(t, err)

	assertCurrent(t, inst, "") // nothing active yet

	const oldV, newV = "0.0.25", "0.0.30-nightly.20260902.101"
	oldB, err := inst.Stage(ctx, oldV)
	require.NoError(t, err)
	assert.Equal(t, rollout.Build{Version: oldV, Dir: filepath.Join(prefix, "versions", oldV),
		Bin: filepath.Join(prefix, "versions", oldV, "node_modules", ".bin", "t3")}, oldB)
	assertCurrent(t, inst, "") // staging does not activate
	require.NoError(t, inst.Activate(ctx, oldB))

	newB, err := inst.Stage(ctx, newV)
	require.NoError(t, err)
	staged, err := inst.Staged(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{oldV, newV}, staged)
	assertCurrent(t, inst, oldV)
	assertBinVersion(t, oldB.Bin, oldV)
	assertBinVersion(t, newB.Bin, newV)

	require.NoError(t, inst.Activate(ctx, newB))
	assertCurrent(t, inst, newV)
	assertBinVersion(t, inst.Bin(), newV)
	bin, err := inst.BinFor(oldV)
	require.NoError(t, err)
	assertBinVersion(t, bin, oldV)

	// Rollback with no registry: Stage answers from disk, Activate is a
	// link switch.
	require.NoError(t, reg.Close())
	again, err := inst.Stage(ctx, oldV)
	require.NoError(t, err)
	require.Equal(t, oldB, again)
	require.NoError(t, inst.Activate(ctx, again))
	assertCurrent(t, inst, oldV)
	assertBinVersion(t, inst.Bin(), oldV)

	probing, err := npm.NewSideBySide(prefix, npm.SideBySideOptions{ProbeVersion: true})
	require.NoError(t, err)
	v, err := probing.Current(ctx)
	require.NoError(t, err)
	assert.Equal(t, oldV, v)

	// Drop: never the current one; others go; absent ones are fine.
	require.ErrorIs(t, inst.Drop(ctx, oldV), npm.ErrDropCurrent)
	require.NoError(t, inst.Drop(ctx, newV))
	require.NoError(t, inst.Drop(ctx, newV))
	assert.NoDirExists(t, newB.Dir)
	_, err = inst.BinFor(newV)
	require.ErrorIs(t, err, npm.ErrNotStaged)
	require.ErrorIs(t, inst.Activate(ctx, newB), npm.ErrNotStaged)
	assertCurrent(t, inst, oldV)
	entries, err := os.ReadDir(filepath.Join(prefix, "versions"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no leftovers from the drop")
}

// TestSideBySideFailedStage checks that an install that fails, before or
// after npm unpacked the package, leaves nothing that looks staged.
func TestSideBySideFailedStage(t *testing.T) {
	t.Parallel() // each has its own registry; npm calls mostly wait
	ctx := context.Background()
	reg := npmtest.New(t, npmtest.Options{})
	require.NoError(t, reg.PublishT3(ctx, "0.0.26", "latest", npmtest.PublishOptions{Postinstall: "exit 1"}))
	require.NoError(t, reg.PublishT3(ctx, "0.0.27", "latest", npmtest.PublishOptions{Engines: ">=18 || >=1000"}))
	require.NoError(t, reg.PublishT3(ctx, "0.0.29", "latest", npmtest.PublishOptions{Engines: "^9999.1 || >=10000"}))
	require.NoError(t, reg.PublishT3(ctx, "0.0.28", "latest", npmtest.PublishOptions{Postinstall: "sleep 60"}))
	prefix := t.TempDir()
	inst, err := npm.NewSideBySide(prefix, npm.SideBySideOptions{Env: reg.Env(), Logger: npmtest.Logger(t)})
	require.NoError(t, err)
	versions := filepath.Join(prefix, "versions")

	// A crash mid-stage left this behind; it never counts as staged.
	leftover := filepath.Join(versions, ".stage-0.0.27-crashed")
	require.NoError(t, os.MkdirAll(filepath.Join(leftover, "node_modules", ".bin"), 0o755))

	cases := []struct {
		name, version string
		timeout       time.Duration
	}{
		{"not published", "0.0.99", 0},
		{"postinstall fails after unpacking", "0.0.26", 0},
		{"interrupted (a hung postinstall, then the deadline)", "0.0.28", 2 * time.Second},
	}
	for _, c := range cases {
		cctx, cancel := context.WithCancel(ctx)
		if c.timeout > 0 {
			cctx, cancel = context.WithTimeout(ctx, c.timeout)
		}
		began := time.Now()
		_, err := inst.Stage(cctx, c.version)
		cancel()
		var ce *npm.CommandError
		require.ErrorAs(t, err, &ce, c.name)
		if c.timeout > 0 {
			require.ErrorIs(t, err, context.DeadlineExceeded, c.name)
			assert.Less(t, time.Since(began), c.timeout+3*time.Second, "the install's children die with it")
		}
		assert.NoDirExists(t, filepath.Join(versions, c.version), c.name)
		_, err = inst.BinFor(c.version)
		require.ErrorIs(t, err, npm.ErrNotStaged, c.name)
	}
	// npm installs a package whose engines.node excludes this host's Node
	// (a warning); the binary would fail when it starts. The host is at
	// fault: the stage fails saying so, and nothing stays staged.
	_, err = inst.Stage(ctx, "0.0.29")
	require.ErrorIs(t, err, npm.ErrEngine)
	assert.ErrorContains(t, err, "t3@0.0.29 needs Node ^9999.1 || >=10000, and this host runs v")
	assert.NoDirExists(t, filepath.Join(versions, "0.0.29"))

	staged, err := inst.Staged(ctx)
	require.NoError(t, err)
	assert.Empty(t, staged)

	for _, bad := range []string{"../0.0.27", "0.0.27 || 9", "latest", "-v"} {
		_, err := inst.Stage(ctx, bad)
		require.ErrorIs(t, err, npm.ErrInvalidVersion, bad)
		require.ErrorIs(t, inst.Drop(ctx, bad), npm.ErrInvalidVersion, bad)
	}

	_, err = inst.Stage(ctx, "0.0.27")
	require.NoError(t, err)
	entries, err := os.ReadDir(versions)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"0.0.27"}, names, "failed stages and the crash leftover are gone")
}

func assertCurrent(t *testing.T, inst rollout.Installer, want string) {
	t.Helper()
	got, err := inst.Current(context.Background())
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func assertBinVersion(t *testing.T, bin, want string) {
	t.Helper()
	got, err := npm.BinVersion(context.Background(), bin, nil)
	require.NoError(t, err)
	assert.Equal(t, want, got, bin)
}

// A staged version whose package.json no longer says it (torn by a power
// loss after the rename, or edited) is not reused as it is: it is staged
// again (a health check on it would dead-end a good build); the active one
// is never touched.
func TestSideBySideRestagesATornStage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := newFleetRegistry(t)
	prefix := filepath.Join(t.TempDir(), "t3")
	inst, err := npm.NewSideBySide(prefix, npm.SideBySideOptions{Env: reg.Env(), Logger: npmtest.Logger(t)})
	require.NoError(t, err)
	const oldV, newV = "0.0.25", "0.0.30-nightly.20260902.101"
	oldB, err := inst.Stage(ctx, oldV)
	require.NoError(t, err)
	require.NoError(t, inst.Activate(ctx, oldB))
	newB, err := inst.Stage(ctx, newV)
	require.NoError(t, err)

	pkg := filepath.Join(newB.Dir, "node_modules", "t3", "package.json")
	require.NoError(t, os.WriteFile(pkg, nil, 0o644)) // torn: empty
	again, err := inst.Stage(ctx, newV)
	require.NoError(t, err)
	require.Equal(t, newB, again)
	assertBinVersion(t, again.Bin, newV)
	b, err := os.ReadFile(pkg)
	require.NoError(t, err)
	require.Contains(t, string(b), newV, "installed again")

	require.NoError(t, os.WriteFile(filepath.Join(oldB.Dir, "node_modules", "t3", "package.json"), nil, 0o644))
	_, err = inst.Stage(ctx, oldV)
	require.Error(t, err, "the active build is not replaced under its instances")
}
