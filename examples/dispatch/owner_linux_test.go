package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/t3fleet/t3fleet/internal/realtest"
)

// visitAs sends a first visit as user from this process.
func visitAs(t *testing.T, base, user string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/", nil)
	require.NoError(t, err)
	req.Header.Set("X-authentik-username", user)
	req.Header.Set("Sec-Fetch-Dest", "document")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// With -trusted-proxy-users, the real lookup in /proc/net/tcp decides: this
// process is paired when its uid is listed and refused when it is not, on
// both serving paths.
func TestRunOwnerCheck(t *testing.T) {
	self := os.Getuid()
	for _, fast := range []string{"true", "false"} {
		for _, tc := range []struct {
			name, users string
			status      int
		}{
			{"own uid listed", strconv.Itoa(self), http.StatusFound},
			{"own uid listed after a name", "nobody," + strconv.Itoa(self), http.StatusFound},
			{"another uid only", strconv.Itoa(self + 4242), http.StatusForbidden},
		} {
			t.Run("fast-path="+fast+"/"+tc.name, func(t *testing.T) {
				base, logs, _ := oneInstanceRun(t, "-fast-path="+fast, "-trusted-proxy-users", tc.users)
				require.Equal(t, tc.status, visitAs(t, base, "emil.barzin"), logs.String())
				if tc.status == http.StatusForbidden {
					assert.Equal(t, 1, logs.Count("identity refused", "not allowed", "uid="+strconv.Itoa(self), "peer=127.0.0.1:"), logs.String())
				} else {
					assert.Equal(t, 1, logs.Count("msg=paired", "user=emil.barzin"), logs.String())
				}
			})
		}
	}
}

// helperURL makes the test binary TestHelperIdentityClient's client.
const helperURL = "T3FLEET_TEST_IDENTITY_CLIENT_URL"

// TestHelperIdentityClient is no test of its own: TestRunOwnerCheckAsAnotherUser
// runs the test binary as another user, and this sends that user's request.
func TestHelperIdentityClient(t *testing.T) {
	base := os.Getenv(helperURL)
	if base == "" {
		t.Skip("the client TestRunOwnerCheckAsAnotherUser runs as another user")
	}
	fmt.Printf("uid=%d status=%d\n", os.Getuid(), visitAs(t, base, "emil.barzin"))
}

// The attack the check stops: another local user (here nobody, 65534)
// sends the identity header over loopback and is refused, while the
// listed user (this process's) is paired, on both serving paths.
func TestRunOwnerCheckAsAnotherUser(t *testing.T) {
	realtest.NeedRoot(t)
	const other = 65534
	// The test binary, where the other user may run it.
	self, err := os.Executable()
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "t3fleet-owner-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "client.test")
	data, err := os.ReadFile(self)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, data, 0o755))

	for _, fast := range []string{"true", "false"} {
		t.Run("fast-path="+fast, func(t *testing.T) {
			base, logs, _ := oneInstanceRun(t, "-fast-path="+fast, "-trusted-proxy-users", strconv.Itoa(os.Getuid()))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-test.run=^TestHelperIdentityClient$", "-test.count=1")
			cmd.Env = []string{helperURL + "=" + base, "HOME=/", "PATH=/usr/bin:/bin"}
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other, Gid: other}}
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Contains(t, string(out), fmt.Sprintf("uid=%d status=%d", other, http.StatusForbidden), "%s\n%s", out, logs.String())
			assert.Equal(t, 1, logs.Count("identity refused", "not allowed", "uid="+strconv.Itoa(other)), logs.String())
			assert.Zero(t, logs.Count("msg=paired"), "nothing paired for the other user")

			require.Equal(t, http.StatusFound, visitAs(t, base, "emil.barzin"), logs.String())
			assert.Equal(t, 1, logs.Count("msg=paired", "user=emil.barzin"))
		})
	}
}
