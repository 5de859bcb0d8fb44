package pairing_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/pairing"
)

// TestPairWaitsForTheInstanceToAnswer: before the mint, Pair makes sure the
// instance answers at all, within the exchange timeout; only a connection
// that was accepted and stays silent makes it wait, and an instance that
// cannot take a credential gets none minted.
func TestPairWaitsForTheInstanceToAnswer(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	tests := []struct {
		name     string
		faults   t3test.Faults
		closed   bool // nothing listens on the port
		wantErr  string
		minTook  time.Duration
		maxTook  time.Duration
		exchange bool // and a mint
	}{
		{name: "answering", maxTook: time.Second, exchange: true},
		{name: "in its start window", faults: t3test.Faults{DeafStart: 500 * time.Millisecond}, minTook: 500 * time.Millisecond, maxTook: timeout, exchange: true},
		{name: "wedged: accepts, never answers", faults: t3test.Faults{Wedged: true}, wantErr: "no answer from the instance within 1.5s", minTook: timeout, maxTook: 2 * timeout},
		{name: "down: refused at once", closed: true, wantErr: "connection refused", maxTook: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := t3test.NewServer(t.TempDir(), t3test.Options{Era: t3test.EraE, User: "emil.barzin", Faults: tc.faults})
			t.Cleanup(srv.Close)
			cred, err := srv.Mint(0)
			require.NoError(t, err)
			base := srv.URL
			if tc.closed {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				base = "http://" + ln.Addr().String()
				require.NoError(t, ln.Close())
			}
			var mints atomic.Int32
			minter := minterFunc(func() (pairing.Credential, error) {
				mints.Add(1)
				return pairing.Credential{Secret: cred}, nil
			})
			p := pairing.NewPairer(minter, pairing.PairerOptions{ExchangeTimeout: timeout})
			in := t3fleet.Instance{User: "emil.barzin", OSUser: "emil", BaseURL: base, StateDir: srv.BaseDir}
			t0 := time.Now()
			s, err := p.Pair(context.Background(), in)
			took := time.Since(t0)
			if tc.wantErr != "" {
				require.Error(t, err)
				var xe *pairing.ExchangeError
				assert.True(t, errors.As(err, &xe), "an *ExchangeError: %v", err)
				assert.Contains(t, err.Error(), tc.wantErr)
			} else {
				require.NoError(t, err)
				require.NotEmpty(t, s.Cookies)
			}
			assert.GreaterOrEqual(t, took, tc.minTook)
			assert.Less(t, took, tc.maxTook)
			assert.Equal(t, tc.exchange, srv.Exchanges() == 1, "exchanges: %d", srv.Exchanges())
			assert.Equal(t, tc.exchange, mints.Load() == 1, "mints: %d", mints.Load())
		})
	}
}

type minterFunc func() (pairing.Credential, error)

func (f minterFunc) Mint(context.Context, t3fleet.Instance) (pairing.Credential, error) { return f() }
