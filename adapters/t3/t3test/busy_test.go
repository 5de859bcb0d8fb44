package t3test_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// Old builds set no busy_timeout: a CLI mint while another writer holds the
// lock fails with "database is locked"; newer builds wait.
func TestBusyTimeoutPerEra(t *testing.T) {
	for _, tc := range []struct {
		era   t3test.Era
		waits bool
	}{
		{t3test.EraB, false},
		{t3test.EraC, true},
	} {
		t.Run(string(tc.era), func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, t3test.Migrate(context.Background(), dir, tc.era))
			conn, err := sqlite.OpenConn(t3test.LiveDB(dir), sqlite.OpenReadWrite|sqlite.OpenWAL)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, sqlitex.ExecuteTransient(conn, "BEGIN IMMEDIATE", nil))
			if !tc.waits {
				_, err = t3test.CreatePairing(context.Background(), dir, tc.era, t3test.PairingOptions{})
				require.NoError(t, sqlitex.ExecuteTransient(conn, "COMMIT", nil))
				require.Error(t, err)
				assert.Contains(t, err.Error(), "database is locked")
				return
			}
			released := make(chan struct{})
			go func() {
				defer close(released)
				time.Sleep(300 * time.Millisecond) // hold the write lock a while, as a busy writer would
				_ = sqlitex.ExecuteTransient(conn, "COMMIT", nil)
			}()
			_, err = t3test.CreatePairing(context.Background(), dir, tc.era, t3test.PairingOptions{})
			<-released
			assert.NoError(t, err, "waited out the lock")
		})
	}
}
