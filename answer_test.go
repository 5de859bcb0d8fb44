package t3fleet_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

func TestGetAnswered(t *testing.T) {
	const limit = time.Second
	tests := []struct {
		name       string
		faults     t3test.Faults
		closed     bool // nothing listens
		path       string
		wantStatus int
		wantCtxErr bool // gave up when ctx ended
		minTook    time.Duration
		maxTook    time.Duration
		limit      time.Duration // the caller's deadline; zero: limit
	}{
		{name: "answering", path: t3test.PathEnvironment, wantStatus: 200, maxTook: limit / 2},
		{name: "accepted in the start window, answered after it on a new connection", faults: t3test.Faults{DeafStart: 400 * time.Millisecond},
			path: t3test.PathEnvironment, wantStatus: 200, minTook: 400 * time.Millisecond, maxTook: limit},
		{name: "a start window longer than the first copies span", faults: t3test.Faults{DeafStart: 4 * time.Second},
			path: t3test.PathEnvironment, wantStatus: 200, minTook: 4 * time.Second, maxTook: 9 * time.Second, limit: 10 * time.Second},
		{name: "wedged: gives up when ctx ends", faults: t3test.Faults{Wedged: true}, path: t3test.PathEnvironment, wantCtxErr: true, minTook: limit, maxTook: 2 * limit},
		{name: "refused: at once", closed: true, path: t3test.PathEnvironment, maxTook: limit / 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := t3test.NewServer(t.TempDir(), t3test.Options{Faults: tc.faults})
			t.Cleanup(srv.Close)
			base := srv.URL
			if tc.closed {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				base = "http://" + ln.Addr().String()
				require.NoError(t, ln.Close())
			}
			d := limit
			if tc.limit > 0 {
				d = tc.limit
			}
			t0 := time.Now() // before the deadline is set: took is then at least d
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			resp, err := t3fleet.GetAnswered(ctx, nil, base+tc.path, http.Header{"Accept": {"application/json"}})
			took := time.Since(t0)
			assert.GreaterOrEqual(t, took, tc.minTook)
			assert.Less(t, took, tc.maxTook)
			if tc.wantStatus == 0 {
				require.Error(t, err)
				assert.Equal(t, tc.wantCtxErr, errors.Is(err, context.DeadlineExceeded), "%v", err)
				return
			}
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tc.wantStatus, resp.StatusCode)
		})
	}
}

func TestGetAnsweredTakesAnyStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	resp, err := t3fleet.GetAnswered(context.Background(), srv.Client(), srv.URL, nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

// A live instance that is only slow gets its answer within the caller's
// deadline, however long after the first hedge that comes: the first
// request is never abandoned for a later one. And the body of a response
// is read within the caller's deadline, not an attempt's.
func TestGetAnsweredWaitsForASlowInstance(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-time.After(900 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(400 * time.Millisecond) // the body comes later than the head
		io.WriteString(w, `{"authenticated":false}`)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := t3fleet.GetAnswered(ctx, srv.Client(), srv.URL, nil)
	require.NoError(t, err, "after %d requests", hits.Load())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, `{"authenticated":false}`, string(b))
	assert.LessOrEqual(t, hits.Load(), int32(4), "a few hedges at most")
}
