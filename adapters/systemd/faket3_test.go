package systemd_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/systemd"
	"github.com/t3fleet/t3fleet/adapters/systemd/systemdtest"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/rollout"
)

var readyAt = regexp.MustCompile(`Connection string: (http://127\.0\.0\.1:\d+)`)

// lastURL polls an instance's log for its newest connection string after
// skip bytes.
func lastURL(t *testing.T, log string, skip int) string {
	t.Helper()
	var url string
	eventually(t, "ready line in "+log, func() bool {
		b, _ := os.ReadFile(log)
		if len(b) < skip {
			return false
		}
		m := readyAt.FindAllStringSubmatch(string(b[skip:]), -1)
		if len(m) == 0 {
			return false
		}
		url = m[len(m)-1][1]
		return true
	})
	return url
}

func envVersion(t *testing.T, base string) string {
	t.Helper()
	v, err := t3test.ServerVersion(context.Background(), base)
	require.NoError(t, err)
	return v
}

// The seed's layout under a real systemd: t3-serve@.service runs
// <prefix>/current/t3, so a restart after the link moves runs the new build.
// The unit says SuccessExitStatus as docs/units.md does: t3 exits 130 after
// a graceful stop, so without it every stop would leave the unit failed.
func TestRealFakeT3FollowsTheCurrentLink(t *testing.T) {
	um := systemdtest.Start(t, systemdtest.Options{})
	cli := t3test.BuildCLI(t)
	prefix, state := t.TempDir(), t.TempDir()
	require.NoError(t, t3test.WritePrefix(prefix, cli, map[string]t3test.Faults{"0.0.27": {}, "0.0.30": {}}, "0.0.27"))
	um.WriteUnit(t, "t3-serve@.service", "[Unit]\nDescription=t3 for %i\n\n[Service]\nType=exec\n"+
		"ExecStart="+filepath.Join(prefix, "current", "t3")+" serve --host 127.0.0.1 --port 0 --base-dir "+state+"/%i\n"+
		"SuccessExitStatus=130 143\n"+
		"StandardOutput=append:"+um.LogDir+"/%i.log\nStandardError=inherit\n")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := systemd.DialSocket(ctx, um.Socket, systemd.Options{})
	require.NoError(t, err)
	defer m.Close()
	u := rollout.Unit{User: "emil"}
	log := filepath.Join(um.LogDir, "emil.log")

	require.NoError(t, m.Start(ctx, u))
	first := lastURL(t, log, 0)
	assert.Equal(t, "0.0.27", envVersion(t, first))
	st, err := m.Status(ctx, u)
	require.NoError(t, err)
	require.True(t, alive(st.MainPID))

	size := func() int { fi, _ := os.Stat(log); return int(fi.Size()) }
	seen := size()
	require.NoError(t, t3test.SwitchCurrent(prefix, "0.0.30"))
	require.NoError(t, m.Restart(ctx, u))
	second := lastURL(t, log, seen)
	assert.Equal(t, "0.0.30", envVersion(t, second))
	st2, err := m.Status(ctx, u)
	require.NoError(t, err)
	assert.NotEqual(t, st.MainPID, st2.MainPID)
	eventually(t, "old serve gone", func() bool { return !alive(st.MainPID) })

	require.NoError(t, m.Stop(ctx, u))
	_, err = http.Get(second + t3test.PathEnvironment)
	assert.Error(t, err, "a stopped instance does not answer")
	st3, err := m.Status(ctx, u)
	require.NoError(t, err)
	assert.Equal(t, "inactive", st3.State, "a graceful stop is a clean one, not a failure")
}
