package sessionprobe_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/sessionprobe"
)

// sessionServer answers GET /api/auth/session with answer(); it counts calls
// and records the cookies it was sent.
func sessionServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != sessionprobe.SessionPath || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func body(s string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, s) }
}

func TestHTTPProberVerdicts(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(http.ResponseWriter, *http.Request)
		want    sessionprobe.Verdict
		wantErr bool
	}{
		{"authenticated", body(`{"authenticated":true,"auth":{"sessionCookieName":"t3_session"},"scopes":["*"]}`), sessionprobe.Valid, false},
		{"definite false", body(`{"authenticated":false,"auth":{"policy":"x"}}`), sessionprobe.Invalid, false},
		{"500", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, `{"authenticated":false}`, 500) }, sessionprobe.Unknown, true},
		{"401 with false body", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, `{"authenticated":false}`, 401) }, sessionprobe.Unknown, true},
		{"html", body(`<!doctype html>`), sessionprobe.Unknown, true},
		{"no field", body(`{"auth":{}}`), sessionprobe.Unknown, true},
		{"string field", body(`{"authenticated":"false"}`), sessionprobe.Unknown, true},
		{"null field", body(`{"authenticated":null}`), sessionprobe.Unknown, true},
		{"empty", body(``), sessionprobe.Unknown, true},
		{"slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, sessionprobe.Unknown, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := sessionServer(t, tc.answer)
			// The default bound: the answers that come must not lose a
			// race with it on a loaded machine; "slow" waits it out.
			p := sessionprobe.NewHTTPProber(sessionprobe.Options{})
			v, err := p.Check(context.Background(), t3fleet.Instance{User: "ana", BaseURL: srv.URL}, []*http.Cookie{{Name: "t3_session", Value: "v"}})
			assert.Equal(t, tc.want, v)
			assert.Equal(t, tc.wantErr, err != nil, "err: %v", err)
		})
	}
}

func TestHTTPProberUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	v, err := sessionprobe.NewHTTPProber(sessionprobe.Options{}).Check(context.Background(), t3fleet.Instance{BaseURL: url}, nil)
	assert.Equal(t, sessionprobe.Unknown, v)
	assert.Error(t, err)
}

// TestHTTPProberCache: Valid verdicts are reused within the TTL per
// instance and cookie values; Invalid ones never.
func TestHTTPProberCache(t *testing.T) {
	var mu sync.Mutex
	live := map[string]bool{"good": true}
	srv, calls := sessionServer(t, func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("t3_session")
		mu.Lock()
		ok := c != nil && live[c.Value]
		mu.Unlock()
		fmt.Fprintf(w, `{"authenticated":%t}`, ok)
	})
	now := time.Unix(1_800_000_000, 0)
	p := sessionprobe.NewHTTPProber(sessionprobe.Options{CacheTTL: time.Second, Now: func() time.Time { return now }})
	in := t3fleet.Instance{User: "ana", BaseURL: srv.URL}
	check := func(val string) sessionprobe.Verdict {
		v, _ := p.Check(context.Background(), in, []*http.Cookie{{Name: "t3_session", Value: val}})
		return v
	}

	require.Equal(t, sessionprobe.Valid, check("good"))
	require.Equal(t, sessionprobe.Valid, check("good"))
	assert.EqualValues(t, 1, calls.Load(), "second Valid came from the cache")

	require.Equal(t, sessionprobe.Invalid, check("bad"))
	require.Equal(t, sessionprobe.Invalid, check("bad"))
	assert.EqualValues(t, 3, calls.Load(), "Invalid is always asked again")

	mu.Lock()
	delete(live, "good") // the server wiped its sessions
	mu.Unlock()
	assert.Equal(t, sessionprobe.Valid, check("good"), "still cached inside the TTL")
	now = now.Add(time.Second)
	assert.Equal(t, sessionprobe.Invalid, check("good"), "asked again once the TTL passed")
	assert.EqualValues(t, 4, calls.Load())

	// Only a Valid verdict could be cached, so the uncached prober is asked
	// about a live session.
	mu.Lock()
	live["fresh"] = true
	mu.Unlock()
	other := sessionprobe.NewHTTPProber(sessionprobe.Options{CacheTTL: -1})
	for range 2 {
		v, _ := other.Check(context.Background(), in, []*http.Cookie{{Name: "t3_session", Value: "fresh"}})
		assert.Equal(t, sessionprobe.Valid, v)
	}
	assert.EqualValues(t, 6, calls.Load(), "negative TTL disables the cache")
}

func TestHTTPProberSendsOnlyTheGivenCookies(t *testing.T) {
	var got string
	srv, _ := sessionServer(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Cookie")
		fmt.Fprint(w, `{"authenticated":true}`)
	})
	p := sessionprobe.NewHTTPProber(sessionprobe.Options{})
	_, err := p.Check(context.Background(), t3fleet.Instance{BaseURL: srv.URL},
		[]*http.Cookie{{Name: "t3_session", Value: "a"}, {Name: "t3_session_3801", Value: "b", Path: "/", HttpOnly: true}})
	require.NoError(t, err)
	assert.Equal(t, "t3_session=a; t3_session_3801=b", got)
}

// The cache's memory does not grow with what the browser sends: a user
// with a live session who adds a large junk t3_session_* cookie to every
// page load (each a new, Valid, cached combination) must not make it keep
// every one of those values.
func TestHTTPProberCacheSizeIsBoundedByEntriesNotBytes(t *testing.T) {
	srv, _ := sessionServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"authenticated":true}`)
	})
	p := sessionprobe.NewHTTPProber(sessionprobe.Options{CacheTTL: time.Hour})
	in := t3fleet.Instance{User: "ana", BaseURL: srv.URL}
	junk := strings.Repeat("j", 128<<10)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const loads = 300
	for i := range loads {
		cookies := []*http.Cookie{{Name: "t3_session", Value: "good"}, {Name: "t3_session_junk", Value: fmt.Sprint(i) + junk}}
		v, err := p.Check(context.Background(), in, cookies)
		require.NoError(t, err)
		require.Equal(t, sessionprobe.Valid, v)
	}
	grew := int64(heap()) - int64(before)
	runtime.KeepAlive(p) // the cache is what is measured
	require.Less(t, grew, int64(8<<20), "the cache kept %d KiB for %d entries (%d KiB of cookies went by)", grew>>10, loads, loads*len(junk)>>10)
}

// A page load right after a restart is probed in the window where t3
// accepts connections it never answers (t3code #12215): the probe asks
// again on a new connection within its timeout and gets the instance's
// real verdict, here that the cookie is dead (as after migration 31), so
// the page re-pairs instead of failing open onto t3's pairing screen.
func TestHTTPProberThroughTheStartWindow(t *testing.T) {
	srv := t3test.NewServer(t.TempDir(), t3test.Options{Faults: t3test.Faults{DeafStart: 500 * time.Millisecond}})
	t.Cleanup(srv.Close)
	p := sessionprobe.NewHTTPProber(sessionprobe.Options{})
	v, err := p.Check(context.Background(), t3fleet.Instance{User: "ana", BaseURL: srv.URL},
		[]*http.Cookie{{Name: srv.CookieName(), Value: "wiped"}})
	require.NoError(t, err)
	assert.Equal(t, sessionprobe.Invalid, v)
}

// A busy instance whose session check takes 900 ms, its body 300 ms more,
// still gives its verdict within the probe's 2 s: the probe's resends for
// the start window never give up on the first request, nor cut a body short.
func TestHTTPProberWaitsForASlowInstance(t *testing.T) {
	srv, calls := sessionServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(900 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
		fmt.Fprint(w, `{"authenticated":false,"auth":{}}`)
	})
	v, err := sessionprobe.NewHTTPProber(sessionprobe.Options{}).Check(context.Background(),
		t3fleet.Instance{User: "ana", BaseURL: srv.URL}, []*http.Cookie{{Name: "t3_session", Value: "dead"}})
	require.NoError(t, err, "after %d requests", calls.Load())
	assert.Equal(t, sessionprobe.Invalid, v)
}
