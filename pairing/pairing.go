package pairing

import (
	"context"
	"net/http"
	"time"

	"github.com/t3fleet/t3fleet"
)

// Credential is a one-time pairing credential minted for one instance.
type Credential struct {
	ID        string
	Secret    string // the 12-character credential the exchange takes
	ExpiresAt time.Time
}

// Minter mints a one-time credential for an instance (the t3 CLI's
// `auth pairing create`, run as the instance's user, with its own build).
type Minter interface {
	Mint(ctx context.Context, in t3fleet.Instance) (Credential, error)
}

// Session is the result of a successful pairing: the t3 session cookies to
// relay to the browser, the exchange endpoint that answered, and whether
// that is the old name (the seed's "fallback").
type Session struct {
	Cookies  []*http.Cookie
	Endpoint string
	Fallback bool
	// MintDuration is how long minting the credential took (zero when the
	// Pairer does not mint).
	MintDuration time.Duration
}

// Pairer pairs a new browser session into an instance.
type Pairer interface {
	Pair(ctx context.Context, in t3fleet.Instance) (*Session, error)
}

// Router maps an SSO user name to that user's instance.
type Router interface {
	Route(ssoUser string) (t3fleet.Instance, bool)
}

// RouterFunc adapts a function to Router, for a routing table of your own
// (a database, a directory, a map).
type RouterFunc func(ssoUser string) (t3fleet.Instance, bool)

// Route calls f.
func (f RouterFunc) Route(ssoUser string) (t3fleet.Instance, bool) { return f(ssoUser) }

// MinterFunc adapts a function to Minter.
type MinterFunc func(ctx context.Context, in t3fleet.Instance) (Credential, error)

// Mint calls f.
func (f MinterFunc) Mint(ctx context.Context, in t3fleet.Instance) (Credential, error) {
	return f(ctx, in)
}
