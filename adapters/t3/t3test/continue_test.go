package t3test_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// t3 continues, at start, the threads whose turn was in flight, starting
// their provider in the project's workspace; settings.json can turn it off.
func TestContinueThreadsAtStart(t *testing.T) {
	for _, era := range []t3test.Era{t3test.EraC, t3test.EraE} {
		for _, off := range []bool{false, true} {
			t.Run(fmt.Sprintf("era %s off=%t", era, off), func(t *testing.T) {
				dir, ws := t.TempDir(), t.TempDir()
				require.NoError(t, t3test.SeedState(dir, era, t3test.SeedOptions{Threads: 3, ActiveTurns: 1, Workspace: ws}))
				if off {
					require.NoError(t, os.WriteFile(filepath.Join(t3test.UserDataDir(dir), t3test.SettingsFile), []byte(`{"continueThreadsAfterServerUpdate":false}`), 0o644))
				}
				srv := newServer(t, dir, t3test.Options{Era: era})
				srv.Close()
				_, err := os.Stat(t3test.ContinuedMarker(ws, t3test.SeedThreadID(0)))
				assert.Equal(t, !off, err == nil, "thread 0 continued: %v", err)
				_, err = os.Stat(t3test.ContinuedMarker(ws, t3test.SeedThreadID(1)))
				assert.Error(t, err, "an idle thread is not")
			})
		}
	}
}
