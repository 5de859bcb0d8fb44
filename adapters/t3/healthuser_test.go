package t3_test

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/internal/realtest"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// wrapBuild puts a script before b's binary that first runs pre (sh, with
// $base set to the --base-dir argument), then the build.
func wrapBuild(t *testing.T, b rollout.Build, pre string) rollout.Build {
	t.Helper()
	wrapper := filepath.Join(t3test.SharedDir(t), "t3")
	script := `#!/bin/sh
prev=; for a in "$@"; do [ "$prev" = --base-dir ] && base=$a; prev=$a; done
` + pre + `
exec '` + b.Bin + `' "$@"
`
	require.NoError(t, os.WriteFile(wrapper, []byte(script), 0o755))
	b.Bin = wrapper
	return b
}

// marksDir is a directory every user can write to (a SharedDir made
// 0777): the build, run as another user, leaves its marks there.
func marksDir(t *testing.T) string {
	t.Helper()
	dir := t3test.SharedDir(t)
	require.NoError(t, os.Chmod(dir, 0o777))
	return dir
}

// nobody is the system's nobody as the check picks it.
func nobody(t *testing.T) string {
	u, err := user.Lookup("nobody")
	if err != nil {
		return "65534 65534"
	}
	return u.Uid + " " + u.Gid
}

// Whatever the seed's state makes a build do (a setting naming a program to
// run, say), it must not do it as root: the serve and the CLI run as the
// seed's owner, or nobody when root owns the seed, with no group of root's
// and a home of their own in the scratch dir.
func TestHealthCheckRunsTheBuildAsAUserNeverRoot(t *testing.T) {
	realtest.NeedRoot(t)
	for _, tc := range []struct {
		name     string
		seedUID  int
		seedGID  int
		runAs    *statebackup.Owner
		wantIDs  string // "uid gid"
		wantWhom string
	}{
		{"the seed's owner", 4242, 4243, nil, "4242 4243", "the seed's owner"},
		{"the seed's owner, not its group root", 4242, 0, nil, "4242 65534", "the seed's owner"},
		{"nobody for a seed root owns", 0, 0, nil, nobody(t), "nobody"},
		{"RunAs", 4242, 4243, &statebackup.Owner{UID: 4300, GID: 4301}, "4300 4301", "RunAs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marks := marksDir(t)
			b := wrapBuild(t, stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{}),
				fmt.Sprintf(`echo "$(id -u) $(id -g) $(id -G) $HOME" > '%s/'"$1"`, marks))
			seed := seedSnapshot(t, t3test.EraC)
			require.NoError(t, os.Chown(seed, tc.seedUID, tc.seedGID))
			hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t), ReadyTimeout: 30 * time.Second, RunAs: tc.runAs})

			rep, err := hc.Check(context.Background(), b, seed)
			require.NoError(t, err)
			require.True(t, rep.Passed, rep.Reason)
			for _, step := range []string{"serve", "auth"} {
				got, err := os.ReadFile(filepath.Join(marks, step))
				require.NoError(t, err, "the %s step ran", step)
				f := strings.Fields(string(got))
				require.Len(t, f, 4, "uid gid groups home: %q", got)
				assert.Equal(t, tc.wantIDs, f[0]+" "+f[1], "%s runs as", step)
				assert.Equal(t, f[1], f[2], "%s has no supplementary group (root's would stay)", step)
				assert.Regexp(t, `/t3-health-\d+/home$`, f[3], "%s has a home of its own", step)
			}
		})
	}
}

// From its start the serve owns the scratch tree and can link anything
// into it: the check's own reads there (the logs it scans, the ledger) are
// made with the serve's rights, never root's, nor with root's
// supplementary groups (group root is among them when the updater runs
// from a login or sudo). Here the serve links the old layout's log
// directory to one only root, or group root, can read, holding a
// migration error: read with root's rights, it would fail a good build.
func TestHealthCheckReadsTheServesTreeWithItsRights(t *testing.T) {
	realtest.NeedRoot(t)
	for _, tc := range []struct {
		name      string
		dir, file os.FileMode
		groups    []int // this process's supplementary groups meanwhile
	}{
		{"root's", 0o700, 0o600, nil},
		{"group root's", 0o750, 0o640, []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.groups != nil {
				groups, err := syscall.Getgroups()
				require.NoError(t, err)
				require.NoError(t, syscall.Setgroups(tc.groups))
				t.Cleanup(func() { _ = syscall.Setgroups(groups) })
			}
			secret := filepath.Join(t3test.SharedDir(t), "secret")
			require.NoError(t, os.Mkdir(secret, tc.dir))
			require.NoError(t, os.WriteFile(filepath.Join(secret, "server.log"),
				[]byte(`Migration "31_AuthAuthorizationScopes" failed: `+tc.name+" words\n"), tc.file))
			b := wrapBuild(t, stageBuild(t, t3test.SharedDir(t), "0.0.30", t3test.Faults{}),
				fmt.Sprintf(`[ "$1" = serve ] && ln -s '%s' "$base/logs"`, secret))
			hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: t3test.SharedDir(t), ReadyTimeout: 30 * time.Second})

			rep, err := hc.Check(context.Background(), b, seedSnapshot(t, t3test.EraC))
			require.NoError(t, err)
			assert.True(t, rep.Passed, "a file only %s rights can read reached the verdict: %s", tc.name, rep.Reason)
		})
	}
}

// The build's user must reach the scratch copy and the build itself. Where
// it cannot, the check could not run: an error naming the cause, never a
// failed verdict, which would dead-end a good build.
func TestHealthCheckTheBuildsUserCannotReach(t *testing.T) {
	realtest.NeedRoot(t)
	for _, tc := range []struct {
		name          string
		tmp, prefix   func(testing.TB) string
		want          string
		wantWithinErr string
	}{
		{"scratch under a 0700 directory", testing.TB.TempDir, t3test.SharedDir,
			"who cannot open its copy of the seed", "every directory above TempDir must let other users through"},
		{"build under a 0700 directory", t3test.SharedDir, testing.TB.TempDir,
			"who cannot run it", "must be open to every user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := stageBuild(t, tc.prefix(t), "0.0.30", t3test.Faults{})
			hc := t3.NewHealthChecker(t3.HealthCheckerOptions{TempDir: tc.tmp(t), ReadyTimeout: 30 * time.Second})

			rep, err := hc.Check(context.Background(), b, seedSnapshot(t, t3test.EraC))
			require.Error(t, err, "not the build's verdict (reason: %s)", rep.Reason)
			assert.False(t, rep.Passed)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), tc.wantWithinErr)
			assert.Contains(t, err.Error(), "uid "+strings.Fields(nobody(t))[0], "names the user")
		})
	}
}
