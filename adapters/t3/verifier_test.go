package t3_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/pairing"
)

func TestDispatchVerifier(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  func(w http.ResponseWriter, poll int64)
		ok      bool
		atLeast int64 // polls made
	}{
		{"302 with a session cookie", func(w http.ResponseWriter, _ int64) {
			http.SetCookie(w, &http.Cookie{Name: "t3_session_3801_0123456789ab", Value: "tok"})
			w.Header().Set("Location", "/")
			w.WriteHeader(http.StatusFound)
		}, true, 1},
		{"legacy name", func(w http.ResponseWriter, _ int64) {
			http.SetCookie(w, &http.Cookie{Name: "t3_session", Value: "tok"})
			w.WriteHeader(http.StatusFound)
		}, true, 1},
		{"502 while the instance restarts, then paired", func(w http.ResponseWriter, poll int64) {
			if poll < 4 {
				http.Error(w, "pairing for emil.barzin returned 500", http.StatusBadGateway)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: "t3_session_abcdefabcdef", Value: "tok"})
			w.WriteHeader(http.StatusFound)
		}, true, 4},
		{"302 without a cookie never passes", func(w http.ResponseWriter, _ int64) {
			w.Header().Set("Location", "/")
			w.WriteHeader(http.StatusFound)
		}, false, 2},
		{"only an unrelated cookie", func(w http.ResponseWriter, _ int64) {
			http.SetCookie(w, &http.Cookie{Name: "authentik_session", Value: "x"})
			w.WriteHeader(http.StatusFound)
		}, false, 2},
		{"200 proxied page is not a pairing", func(w http.ResponseWriter, _ int64) {
			w.WriteHeader(http.StatusOK)
		}, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var polls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := polls.Add(1)
				assert.Equal(t, "emil.barzin", r.Header.Get("X-Sso-User"))
				assert.Equal(t, "document", r.Header.Get("Sec-Fetch-Dest"))
				assert.Contains(t, r.Header.Get("Accept"), "text/html")
				assert.Empty(t, r.Header.Get("Cookie"))
				assert.Equal(t, "/", r.URL.Path)
				tc.answer(w, n)
			}))
			t.Cleanup(srv.Close)
			timeout := 20 * time.Second // the passing cases return at once
			if !tc.ok {
				timeout = 500 * time.Millisecond
			}
			v, err := t3.NewDispatchVerifier(srv.URL, t3.DispatchVerifierOptions{Header: "X-SSO-User", Timeout: timeout, MaxBackoff: 50 * time.Millisecond})
			require.NoError(t, err)
			err = v.VerifyPairing(context.Background(), "emil.barzin")
			if tc.ok {
				assert.NoError(t, err)
			} else {
				var ve *t3.VerifyError
				require.True(t, errors.As(err, &ve), "got %v", err)
				assert.ErrorIs(t, err, t3.ErrNotPaired)
				assert.Equal(t, "emil.barzin", ve.User)
			}
			assert.GreaterOrEqual(t, polls.Load(), tc.atLeast)
		})
	}
}

func TestDispatchVerifierRefuses(t *testing.T) {
	v, err := t3.NewDispatchVerifier("http://127.0.0.1:1", t3.DispatchVerifierOptions{Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	assert.ErrorIs(t, v.VerifyPairing(context.Background(), "../etc"), t3fleet.ErrInvalidName)
	err = v.VerifyPairing(context.Background(), "emil")
	assert.ErrorIs(t, err, t3.ErrNotPaired, "nothing listens: polls until the deadline")
	_, err = t3.NewDispatchVerifier("127.0.0.1:3780", t3.DispatchVerifierOptions{})
	assert.Error(t, err)
}

// routerFunc routes every SSO user to one instance.
type routerFunc func(string) (t3fleet.Instance, bool)

func (f routerFunc) Route(u string) (t3fleet.Instance, bool) { return f(u) }

// Through the real dispatch handler, minting with the instance's own build:
// the verification the updater runs after restarting a unit.
func TestDispatchVerifierThroughTheDispatch(t *testing.T) {
	for _, era := range []t3test.Era{t3test.EraA, t3test.EraC, t3test.EraE} {
		t.Run(string(era), func(t *testing.T) {
			inst := sideBySide{prefix: t.TempDir()}
			version := t3test.DefaultVersion(era)
			inst.stage(t, version)
			srv := t3test.NewServer(t.TempDir(), t3test.Options{Version: version, User: "emil.barzin"})
			t.Cleanup(srv.Close)
			vm, err := t3.NewVersionMinter(inst.BinFor, t3.VersionMinterOptions{})
			require.NoError(t, err)
			m := &waitedMinter{Minter: vm}
			router := routerFunc(func(u string) (t3fleet.Instance, bool) {
				return t3fleet.Instance{User: u, OSUser: "emil", BaseURL: srv.URL, StateDir: srv.BaseDir}, u == "emil.barzin"
			})
			dispatch := httptest.NewServer(pairing.NewHandler(router, pairing.NewPairer(m, pairing.PairerOptions{}), pairing.HandlerOptions{}))
			t.Cleanup(dispatch.Close)
			// Run first: a verifier that gave up leaves the dispatch's
			// pairing going on, and its mint's CLI writing in the
			// instance's state dir, which is removed after.
			t.Cleanup(m.close)

			v, err := t3.NewDispatchVerifier(dispatch.URL, t3.DispatchVerifierOptions{Timeout: 20 * time.Second})
			require.NoError(t, err)
			require.NoError(t, v.VerifyPairing(context.Background(), "emil.barzin"))
			assert.Equal(t, 1, srv.Exchanges())

			srv.SetFaults(t3test.Faults{PairingBroken: true})
			v, err = t3.NewDispatchVerifier(dispatch.URL, t3.DispatchVerifierOptions{Timeout: 500 * time.Millisecond})
			require.NoError(t, err)
			assert.ErrorIs(t, v.VerifyPairing(context.Background(), "emil.barzin"), t3.ErrNotPaired)
		})
	}
}

// waitedMinter counts the mints in flight, so a test can wait for them;
// once closed, it starts none (a pairing the dispatch began for a
// request that is gone may reach its mint after the test is over).
type waitedMinter struct {
	pairing.Minter
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (m *waitedMinter) Mint(ctx context.Context, in t3fleet.Instance) (pairing.Credential, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return pairing.Credential{}, errors.New("the test is over")
	}
	m.wg.Add(1)
	m.mu.Unlock()
	defer m.wg.Done()
	return m.Minter.Mint(ctx, in)
}

// close refuses new mints and waits for those in flight.
func (m *waitedMinter) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.wg.Wait()
}

// After restarting emil's unit, the updater asks the real dispatch to pair
// him, as his browser would.
func ExampleNewDispatchVerifier() {
	v, err := t3.NewDispatchVerifier("http://127.0.0.1:3780", t3.DispatchVerifierOptions{Header: "X-authentik-username"})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.VerifyPairing(ctx, "emil.barzin"); err != nil {
		fmt.Println(err)
	}
}
