package t3

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// The seed is a user's prebump snapshot, in a snapshot directory the user
// owns (statebackup hands it to the database's owner). Between the backup
// and the check the user can put a FIFO there, whose open would block
// `updater run` for good with the lock held, or a symlink to a database
// that is not theirs. Both are refused before anything reads them.
func TestCheckRefusesAPlantedSeed(t *testing.T) {
	cases := []struct {
		name  string
		plant func(t *testing.T, seed string)
	}{
		{"fifo", func(t *testing.T, seed string) { plantFIFO(t, seed) }},
		{"symlink to another user's database", func(t *testing.T, seed string) {
			other := t.TempDir()
			require.NoError(t, t3test.SeedState(other, t3test.EraC, t3test.SeedOptions{}))
			require.NoError(t, os.Symlink(t3test.LiveDB(other), seed))
		}},
		{"regular seed whose -wal is a FIFO", func(t *testing.T, seed string) {
			other := t.TempDir()
			require.NoError(t, t3test.SeedState(other, t3test.EraC, t3test.SeedOptions{}))
			b, err := os.ReadFile(t3test.LiveDB(other))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(seed, b, 0o600))
			plantFIFO(t, seed+"-wal")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seed := filepath.Join(t.TempDir(), "state-prebump-0.0.99-20260901-000000.sqlite")
			c.plant(t, seed)
			h := NewHealthChecker(HealthCheckerOptions{TempDir: t.TempDir()})
			done := make(chan error, 1)
			go func() {
				_, err := h.check(context.Background(), rollout.Build{Version: "0.0.99", Bin: "/bin/false"}, seed)
				done <- err
			}()
			select {
			case err := <-done:
				require.ErrorIs(t, err, statebackup.ErrUnsafePath)
				require.Contains(t, err.Error(), seed)
			case <-time.After(10 * time.Second):
				t.Fatal("the health check blocked on a planted seed")
			}
		})
	}
}

// plantFIFO makes path a FIFO, and at cleanup unblocks a reader left
// hanging on it, so the test binary can end.
func plantFIFO(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
}
