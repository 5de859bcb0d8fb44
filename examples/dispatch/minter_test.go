package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// With -mint-versions the dispatch mints with the build the instance runs,
// never with a newer one that would migrate its database under it.
func TestMintVersionsUsesTheInstancesOwnBuild(t *testing.T) {
	cli := t3test.BuildCLI(t)
	prefix := t.TempDir()
	for _, v := range []string{"0.0.27", "0.0.30"} {
		dir := filepath.Join(prefix, "versions", v, "node_modules", ".bin")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		_, err := t3test.WriteBuild(dir, cli, v, t3test.Faults{})
		require.NoError(t, err)
	}
	home := t.TempDir()
	base := filepath.Join(home, "emil", ".t3")
	require.NoError(t, t3test.SeedState(base, t3test.EraFor("0.0.27"), t3test.SeedOptions{}))
	srv := t3test.NewServer(base, t3test.Options{Version: "0.0.27"})
	t.Cleanup(srv.Close)

	c, err := parseFlags([]string{"-mint-versions", prefix, "-mint-run-as", "", "-home-root", home}, os.Stderr)
	require.NoError(t, err)
	m, err := newMinter(c)
	require.NoError(t, err)

	ctx := context.Background()
	in := t3fleet.Instance{User: "emil", OSUser: "emil", BaseURL: srv.URL}
	cred, err := m.Mint(ctx, in)
	require.NoError(t, err)
	assert.Len(t, cred.Secret, 12)
	level, err := t3test.ReadLedgerMax(t3test.LiveDB(base))
	require.NoError(t, err)
	assert.Equal(t, t3test.EraFor("0.0.27").SchemaLevel(), level, "the 0.0.30 CLI would have migrated the DB")

	srv2 := t3test.NewServer(t.TempDir(), t3test.Options{Version: "0.0.31"})
	t.Cleanup(srv2.Close)
	_, err = m.Mint(ctx, t3fleet.Instance{User: "ana", OSUser: "ana", BaseURL: srv2.URL})
	assert.ErrorIs(t, err, t3.ErrVersionNotInstalled)

	_, err = m.Mint(ctx, t3fleet.Instance{User: "x", OSUser: "../root", BaseURL: srv.URL})
	assert.ErrorIs(t, err, t3fleet.ErrInvalidName)
}
