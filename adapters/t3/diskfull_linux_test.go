package t3_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/internal/realtest"
)

// The scratch disk fills up during the health check, at whichever step:
// the seed's copy, the settings, the quiesce, the serve's migrations, the
// mint. A good build is never failed for it (a failed verdict dead-ends and
// drops the build): each outcome is a pass or an error (the check could
// not run) naming the scratch directory. The free space is swept from
// just the seed's size to plenty.
func TestHealthCheckOnAFullScratchDiskBlamesNoBuild(t *testing.T) {
	seed := seedSnapshot(t, t3test.EraB)
	fi, err := os.Stat(seed)
	require.NoError(t, err)
	b := stageBuild(t, t3test.SharedDir(t), "0.0.28", t3test.Faults{}) // migrates B data: the serve writes
	scratch := realtest.Tmpfs(t, 8<<20)
	// The build runs as nobody (root owns the seed), who must pass the
	// mount point's parent, a 0700 t.TempDir().
	require.NoError(t, os.Chmod(filepath.Dir(scratch), 0o711))
	hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: scratch, ReadyTimeout: 30 * time.Second})
	errs, passed := 0, 0
	for free := fi.Size(); free < fi.Size()+256<<10; free += 16 << 10 {
		filler := realtest.FillTo(t, scratch, free)
		rep, err := hc.Check(context.Background(), b, seed)
		require.NoError(t, os.Remove(filler))
		if rep.Passed {
			passed++
			continue
		}
		require.Error(t, err, "free %d: a full scratch disk failed the build: %s", free, rep.Reason)
		require.Contains(t, err.Error(), scratch, "free %d", free)
		errs++
	}
	require.NotZero(t, errs)
	require.NotZero(t, passed)
}
