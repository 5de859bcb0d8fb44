package t3test_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestBuiltCLIAsABuild(t *testing.T) {
	cli := t3test.BuildCLI(t)
	assert.Equal(t, cli, t3test.BuildCLI(t), "built once per process")
	bin, err := t3test.WriteBuild(t.TempDir(), cli, "0.0.27", t3test.Faults{})
	require.NoError(t, err)

	out, err := exec.Command(bin, "--version").Output()
	require.NoError(t, err)
	assert.Equal(t, "t3 v0.0.27\n", string(out))

	// serve as a child process, mint with the CLI, exchange, SIGTERM.
	dir := t.TempDir()
	var stdout lockedBuffer
	cmd := exec.Command(bin, "serve", "--host", "127.0.0.1", "--port", "0", "--base-dir", dir)
	cmd.Stdout = &stdout
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	re := regexp.MustCompile(`Connection string: (http://\S+)`)
	var url string
	require.Eventually(t, func() bool {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
			return true
		}
		return false
	}, 20*time.Second, 20*time.Millisecond)

	out, err = exec.Command(bin, "auth", "pairing", "create", "--base-dir", dir, "--ttl", "5m", "--json").Output()
	require.NoError(t, err)
	var link t3test.PairingLink
	require.NoError(t, json.Unmarshal(out, &link))
	assert.Equal(t, "client", link.Role)
	resp, err := http.Post(url+"/api/auth/browser-session", "application/json", strings.NewReader(`{"credential":"`+link.Credential+`"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Set-Cookie"))

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	var ee *exec.ExitError
	require.ErrorAs(t, cmd.Wait(), &ee)
	assert.Equal(t, 130, ee.ExitCode(), "t3 exits 130 after a graceful SIGTERM")
}

// t3's serve runs under Effect 4's NodeRuntime.runMain: SIGTERM and SIGINT
// both interrupt its main fiber, and the default teardown exits 130 for an
// interruption, whichever signal it was (not 0, not 143).
func TestBuiltCLIServeSignalExits130(t *testing.T) {
	bin, err := t3test.WriteBuild(t.TempDir(), t3test.BuildCLI(t), "0.0.46", t3test.Faults{})
	require.NoError(t, err)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			var stdout lockedBuffer
			cmd := exec.Command(bin, "serve", "--host", "127.0.0.1", "--port", "0", "--base-dir", t.TempDir())
			cmd.Stdout = &stdout
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "T3 Code server is ready.") },
				20*time.Second, 20*time.Millisecond)
			require.NoError(t, cmd.Process.Signal(sig))
			var ee *exec.ExitError
			require.ErrorAs(t, cmd.Wait(), &ee)
			assert.Equal(t, 130, ee.ExitCode())
		})
	}
}

func TestBuiltCLIMigrationFault(t *testing.T) {
	bin, err := t3test.WriteBuild(t.TempDir(), t3test.BuildCLI(t), "0.0.28", t3test.Faults{MigrationFails: true})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "serve", "--port", "0", "--base-dir", dir)
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 1, ee.ExitCode())
	assert.Contains(t, stderr.String(), `Migration "31_AuthAuthorizationScopes" failed`)
}

func TestWriteBuildRejects(t *testing.T) {
	_, err := t3test.WriteBuild(t.TempDir(), "/bin/true", "latest", t3test.Faults{})
	assert.Error(t, err)
	_, err = t3test.WriteBuild(t.TempDir(), "/tmp/it's", "0.0.30", t3test.Faults{})
	assert.Error(t, err)
}
