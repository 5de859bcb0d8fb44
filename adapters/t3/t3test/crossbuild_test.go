package t3test_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// Builds of different eras on one base dir: an older build on a database
// a newer one migrated, and a newer CLI under an older serve.

func TestOldBuildOnForwardMigratedDB(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, t3test.SeedState(dir, t3test.EraD, t3test.SeedOptions{}))
	srv := newServer(t, dir, t3test.Options{Era: t3test.EraB})
	assert.Equal(t, 200, do(t, "GET", srv.URL+"/", "").Status, "liveness looks fine")
	assert.Empty(t, srv.OwnerPairingURL)

	_, err := srv.Mint(0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "table auth_pairing_links has no column named role")
	assert.Contains(t, err.Error(), "PersistenceSqlError")

	link, err := t3test.CreatePairing(context.Background(), dir, t3test.EraD, t3test.PairingOptions{})
	require.NoError(t, err)
	r := do(t, "POST", srv.URL+t3test.PathBrowserSession, exchangeBody(link.Credential))
	assert.Equal(t, 500, r.Status)
	srv.Close()
	log, err := os.ReadFile(t3test.LogPath(dir))
	require.NoError(t, err)
	assert.Contains(t, string(log), "PersistenceSqlError")
	assert.Contains(t, string(log), "no column named role")
}

func TestNewerCLIMigratesUnderOlderServer(t *testing.T) {
	dir := t.TempDir()
	srv := newServer(t, dir, t3test.Options{Era: t3test.EraB})
	cookie := pair(t, srv)
	// The outage of 2026-06-09: a newer CLI mints for the older server.
	_, err := t3test.CreatePairing(context.Background(), dir, t3test.EraC, t3test.PairingOptions{})
	require.NoError(t, err)
	// Migration 31 rebuilt the sessions table without the role column the
	// older server reads: it cannot check any session, and says so with a
	// 500 (a store failure is an internal error in t3, never "signed out").
	r := do(t, "GET", srv.URL+"/api/auth/session", "", cookie)
	assert.Equal(t, 500, r.Status)
	assert.Equal(t, "EnvironmentAuthInternalError", r.Body["_tag"])
	_, err = srv.Mint(0)
	assert.ErrorContains(t, err, "no column named role")
}

func TestRestartOnNewerBuildWipesSessions(t *testing.T) {
	dir := t.TempDir()
	old := t3test.NewServer(dir, t3test.Options{Era: t3test.EraB, RemoteReachable: true})
	cookie := pair(t, old)
	old.Close()
	srv := newServer(t, dir, t3test.Options{Era: t3test.EraC, RemoteReachable: true})
	assert.Equal(t, cookie.Name, srv.CookieName())
	assert.Equal(t, false, do(t, "GET", srv.URL+"/api/auth/session", "", cookie).Body["authenticated"])
	assert.Equal(t, true, do(t, "GET", srv.URL+"/api/auth/session", "", pair(t, srv)).Body["authenticated"])
}
