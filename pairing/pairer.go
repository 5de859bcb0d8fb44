package pairing

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/t3fleet/t3fleet"
)

// DefaultExchangeTimeout bounds one exchange (both endpoint names).
const DefaultExchangeTimeout = 10 * time.Second

// MintError is a failed mint: the instance's user, how long the attempt took
// and why.
type MintError struct {
	User     string
	Duration time.Duration
	Err      error
}

func (e *MintError) Error() string { return fmt.Sprintf("mint for %s: %v", e.User, e.Err) }
func (e *MintError) Unwrap() error { return e.Err }

// PairerOptions configures an ExchangePairer. The zero value works.
type PairerOptions struct {
	// Client posts the exchange; nil uses a client over http.DefaultTransport.
	Client *http.Client
	// ExchangeTimeout bounds the exchange, and before it the wait for the
	// instance to answer at all; zero means DefaultExchangeTimeout.
	ExchangeTimeout time.Duration
}

// ExchangePairer pairs by minting a credential and exchanging it at the
// instance. It remembers per instance (base URL) which exchange name worked
// and tries that one first next time. It is safe for concurrent use. Build
// one with NewPairer: the zero value is not usable.
type ExchangePairer struct {
	minter  Minter
	client  *http.Client
	timeout time.Duration

	mu       sync.Mutex
	endpoint map[string]string // base URL -> exchange endpoint that last worked
}

var _ Pairer = (*ExchangePairer)(nil)

// NewPairer returns a Pairer that mints with m and exchanges over HTTP.
func NewPairer(m Minter, opts PairerOptions) *ExchangePairer {
	p := &ExchangePairer{minter: m, client: opts.Client, timeout: opts.ExchangeTimeout, endpoint: map[string]string{}}
	if p.client == nil {
		p.client = &http.Client{}
	}
	if p.timeout <= 0 {
		p.timeout = DefaultExchangeTimeout
	}
	return p
}

// Pair validates the instance's OS user, makes sure the instance answers
// at all, mints, then exchanges. A t3 that is starting accepts connections
// while it still migrates its database, and answers them only once it is
// up (t3fleet.GetAnswered); one that is down refuses them: the mint waits
// for the answer, so that the CLI never opens a database its server is
// still migrating, and no credential is minted for an instance that cannot
// take it. The wait and the exchange each get ExchangeTimeout.
// Errors are a *MintError (the instance answered, the mint failed) or an
// *ExchangeError. The returned Session records the mint's duration.
func (p *ExchangePairer) Pair(ctx context.Context, in t3fleet.Instance) (*Session, error) {
	if err := t3fleet.ValidOSUser(in.OSUser); err != nil {
		return nil, &MintError{User: in.User, Err: err}
	}
	if err := waitAnswering(ctx, p.client, in.BaseURL, p.timeout); err != nil {
		ep := p.Endpoint(in.BaseURL)
		if ep == "" {
			ep = EndpointBrowserSession
		}
		return nil, fmt.Errorf("pair %s: %w", in.User, &ExchangeError{Endpoint: ep, Err: err})
	}
	start := time.Now()
	cred, err := p.minter.Mint(ctx, in)
	took := time.Since(start)
	if err == nil && cred.Secret == "" {
		err = fmt.Errorf("minter returned an empty credential")
	}
	if err != nil {
		return nil, &MintError{User: in.User, Duration: took, Err: err}
	}
	xctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	s, err := Exchange(xctx, p.client, in.BaseURL, cred.Secret, p.Endpoint(in.BaseURL))
	if err != nil {
		return nil, fmt.Errorf("pair %s: %w", in.User, err)
	}
	p.mu.Lock()
	p.endpoint[in.BaseURL] = s.Endpoint
	p.mu.Unlock()
	s.MintDuration = took
	return s, nil
}

// Endpoint returns the exchange name that last worked for baseURL, or "" when
// none has yet.
func (p *ExchangePairer) Endpoint(baseURL string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.endpoint[baseURL]
}
