package t3_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/rollout/rollouttest"
)

func TestReportingUnitsAsksTheInstance(t *testing.T) {
	srv := t3test.NewServer(t.TempDir(), t3test.Options{Version: "0.0.30-nightly.20260901.100"})
	t.Cleanup(srv.Close)
	down := t3test.NewServer(t.TempDir(), t3test.Options{})
	downURL := down.URL
	down.Close()
	errNoEnv := errors.New("no env file")
	wrapped := &rollouttest.UnitManager{}
	u := t3a.ReportingUnits{UnitManager: wrapped, BaseURL: func(u rollout.Unit) (string, error) {
		switch u.User {
		case "emil":
			return srv.URL, nil
		case "gone":
			return downURL, nil
		}
		return "", fmt.Errorf("%s: %w", u.User, errNoEnv)
	}}
	ctx := context.Background()
	v, err := u.RunningVersion(ctx, rollout.Unit{User: "emil"})
	require.NoError(t, err)
	assert.Equal(t, "0.0.30-nightly.20260901.100", v)

	_, err = u.RunningVersion(ctx, rollout.Unit{User: "nobody"})
	assert.ErrorIs(t, err, errNoEnv, "the locator's error, as it is")
	_, err = u.RunningVersion(ctx, rollout.Unit{User: "gone"})
	assert.Error(t, err, "an instance that does not answer reports no version")

	// What the updater's idle gate looks through for systemd's cgroups.
	assert.Same(t, wrapped, u.Unwrap().(*rollouttest.UnitManager), "Unwrap gives the manager it wraps")
}

func ExampleReportingUnits() {
	dir, err := os.MkdirTemp("", "t3-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	srv := t3test.NewServer(dir, t3test.Options{Version: "0.0.31"})
	defer srv.Close()
	units := t3a.ReportingUnits{
		UnitManager: &rollouttest.UnitManager{}, // systemd.Manager, supervisor.Supervisor, ...
		BaseURL:     func(rollout.Unit) (string, error) { return srv.URL, nil },
	}
	v, err := units.RunningVersion(context.Background(), rollout.Unit{Name: "t3-serve@ana.service", User: "ana"})
	fmt.Println(v, err)
	// Output: 0.0.31 <nil>
}

// What an instance answers for its version is the user's to choose: one
// that is not a t3 version string is an error (ErrBadVersion), never a
// version that status prints or the watchdog records.
func TestServerVersionRefusesWhatIsNoVersion(t *testing.T) {
	for _, tc := range []struct {
		answer string
		ok     bool
	}{
		{"0.0.30", true},
		{"0.0.46-nightly.20260901.900", true},
		{"0.0.31\n2026-11-01T03:00:00Z 0.0.32 carol -", false},
		{"0.0.31 0.0.32", false},
		{"\x1b[2J0.0.31", false},
		{"../../bin/sh", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.answer), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = json.NewEncoder(w).Encode(map[string]string{"serverVersion": tc.answer})
			}))
			t.Cleanup(srv.Close)
			v, err := t3a.ServerVersion(context.Background(), nil, 0, srv.URL)
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, tc.answer, v)
				return
			}
			assert.ErrorIs(t, err, t3a.ErrBadVersion)
			assert.Empty(t, v)
		})
	}
}
