package pairing

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"

	"github.com/t3fleet/t3fleet"
)

// DefaultUserHeader is the header Authentik's forward-auth sets.
const DefaultUserHeader = "X-authentik-username"

// DefaultTrustedProxies are the peers allowed to assert an identity: loopback.
var defaultTrustedProxies = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

// DefaultTrustedProxies returns the default trusted peers (127.0.0.0/8, ::1/128).
func DefaultTrustedProxies() []netip.Prefix {
	return append([]netip.Prefix(nil), defaultTrustedProxies...)
}

// Identity refusals. Each is wrapped in an *IdentityError carrying the HTTP
// status the handler answers with.
var (
	ErrUntrustedPeer   = errors.New("request did not come through a trusted proxy")
	ErrNoIdentity      = errors.New("no identity header")
	ErrDuplicateHeader = errors.New("identity header sent more than once")
	ErrLookAlikeHeader = errors.New("identity header sent under a look-alike name")
	ErrBadUserName     = errors.New("invalid user name")
	ErrUserDomain      = errors.New("user name's domain is not accepted")
)

// IdentityError is a refused identity and the status to answer it with.
type IdentityError struct {
	Status int
	Err    error
}

func (e *IdentityError) Error() string { return e.Err.Error() }
func (e *IdentityError) Unwrap() error { return e.Err }

// IdentityResolver decides who a request is from. The zero value is not
// usable; build one with NewIdentityResolver.
type IdentityResolver struct {
	header  string // canonical form
	folded  string
	trusted []netip.Prefix
	domains []string    // lower case; nil: any "@domain" is stripped
	owners  *ownerCheck // nil: loopback peers are honoured on trusted alone
}

// NewIdentityResolver returns a resolver for header (DefaultUserHeader when
// empty) accepting it only from peers inside trusted (the loopback defaults
// when nil).
func NewIdentityResolver(header string, trusted []netip.Prefix) *IdentityResolver {
	if header == "" {
		header = DefaultUserHeader
	}
	if trusted == nil {
		trusted = DefaultTrustedProxies()
	}
	return &IdentityResolver{header: textproto.CanonicalMIMEHeaderKey(header), folded: foldHeaderName(header), trusted: trusted}
}

// WithUserDomains returns a copy of ir that accepts an "@domain" suffix
// only for one of domains (compared without regard to case, and whole: no
// subdomains); a name without a suffix is accepted as before. Without
// domains, any suffix is stripped, as the seed's dispatch did: then an
// IdP that lets anyone choose "ana@elsewhere.example" for a name hands
// them ana's instance.
func (ir *IdentityResolver) WithUserDomains(domains ...string) *IdentityResolver {
	c := *ir
	c.domains = nil
	for _, d := range domains {
		c.domains = append(c.domains, strings.ToLower(d))
	}
	return &c
}

// Header returns the canonical name of the identity header.
func (ir *IdentityResolver) Header() string { return ir.header }

// User returns the validated SSO name of r's user: the peer must be a trusted
// proxy, the header present exactly once under its exact name (any other
// spelling that folds to it is refused), one "@domain" suffix is stripped,
// and the rest must pass t3fleet.ValidSSOName. A Handler's resolver also
// runs the owner check of HandlerOptions.PeerOwner, whose refusal is an
// untrusted peer's.
func (ir *IdentityResolver) User(r *http.Request) (string, error) {
	if !ir.trustedPeer(r.RemoteAddr) || ir.owners != nil && !ir.ownerAllows(r) {
		return "", &IdentityError{Status: http.StatusForbidden, Err: ErrUntrustedPeer}
	}
	for name := range r.Header {
		if name != ir.header && foldsTo(name, ir.folded) {
			return "", &IdentityError{Status: http.StatusBadRequest, Err: fmt.Errorf("%w: %q", ErrLookAlikeHeader, name)}
		}
	}
	// A declared trailer would be a second value, sent after the body (and
	// relayed to the instance with it).
	for name := range r.Trailer {
		if foldsTo(name, ir.folded) {
			return "", &IdentityError{Status: http.StatusBadRequest, Err: fmt.Errorf("%w: %q declared as a trailer", ErrDuplicateHeader, name)}
		}
	}
	vals := r.Header[ir.header]
	switch {
	case len(vals) == 0:
		return "", &IdentityError{Status: http.StatusUnauthorized, Err: ErrNoIdentity}
	case len(vals) > 1:
		return "", &IdentityError{Status: http.StatusBadRequest, Err: ErrDuplicateHeader}
	}
	return ir.name(vals[0])
}

// name turns the identity header's one value into the validated SSO name.
func (ir *IdentityResolver) name(value string) (string, error) {
	// Only HTTP's own whitespace (space, tab) surrounds a field value; a
	// Unicode space is part of the name, which validation then refuses
	// ("ana\u00a0" is another IdP account than "ana").
	name := strings.Trim(value, " \t")
	if local, _, found := strings.Cut(name, "@"); found {
		domain := name[len(local)+1:]
		if strings.Contains(domain, "@") {
			return "", &IdentityError{Status: http.StatusBadRequest, Err: fmt.Errorf("%w: more than one @", ErrBadUserName)}
		}
		if ir.domains != nil && !slices.Contains(ir.domains, strings.ToLower(domain)) {
			return "", &IdentityError{Status: http.StatusForbidden, Err: fmt.Errorf("%w: %q", ErrUserDomain, domain)}
		}
		name = local
	}
	if err := t3fleet.ValidSSOName(name); err != nil {
		return "", &IdentityError{Status: http.StatusBadRequest, Err: fmt.Errorf("%w: %v", ErrBadUserName, err)}
	}
	return name, nil
}

func (ir *IdentityResolver) trustedPeer(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	var addr netip.Addr
	if err == nil {
		addr = ap.Addr()
	} else if addr, err = netip.ParseAddr(remoteAddr); err != nil {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range ir.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// foldHeaderName lowercases a header name and drops '-', '_' and '.', so
// every spelling a proxy might treat as the same header compares equal.
func foldHeaderName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == '_' || c == '.':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// foldsTo reports whether foldHeaderName(name) == folded, without allocating
// (it runs for every header of every request).
func foldsTo(name, folded string) bool {
	j := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-' || c == '_' || c == '.':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if j >= len(folded) || folded[j] != c {
			return false
		}
		j++
	}
	return j == len(folded)
}

// ParseTrustedProxies parses a comma-separated CIDR list; a bare address is
// taken as a single-host prefix.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not a CIDR or address", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	if out == nil {
		out = []netip.Prefix{}
	}
	return out, nil
}
