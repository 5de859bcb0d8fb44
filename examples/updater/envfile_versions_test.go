package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

func TestEnvFilesGiveEachInstanceItsVersion(t *testing.T) {
	srv := t3test.NewServer(t.TempDir(), t3test.Options{Version: "0.0.30-nightly.20260901.100"})
	t.Cleanup(srv.Close)
	envDir := t.TempDir()
	_, port, err := net.SplitHostPort(srv.Addr)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(envDir, "emil.env"), []byte("T3_PORT=\""+port+"\"\n"), 0o644))

	u := t3a.ReportingUnits{UnitManager: &rollouttest.UnitManager{}, BaseURL: hostfiles.EnvFileBaseURL(envDir)}
	ctx := context.Background()
	v, err := u.RunningVersion(ctx, rollout.Unit{User: "emil"})
	require.NoError(t, err)
	assert.Equal(t, "0.0.30-nightly.20260901.100", v)

	_, err = u.RunningVersion(ctx, rollout.Unit{User: "nobody"})
	assert.ErrorIs(t, err, rollout.ErrProvisioning, "no env file is a provisioning problem")
}
