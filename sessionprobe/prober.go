package sessionprobe

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/t3fleet/t3fleet"
)

// SessionPath is t3's session endpoint. It always answers 200 with
// {authenticated: bool, auth: {..., sessionCookieName}}.
const SessionPath = "/api/auth/session"

const (
	// DefaultTimeout bounds one probe. A slow instance must not hold a page
	// load for long: past it the verdict is Unknown and the request proxies.
	DefaultTimeout = 2 * time.Second
	// DefaultCacheTTL is how long a Valid verdict is reused for the same
	// cookie values. Invalid verdicts are never cached.
	DefaultCacheTTL = 2 * time.Second
	// DefaultMaxCacheEntries bounds the Valid-verdict cache.
	DefaultMaxCacheEntries = 4096
	// maxBody bounds how much of the session answer is read.
	maxBody = 64 << 10
)

// ErrUnexpectedAnswer is wrapped by Check when the instance answered, but not
// with a 200 JSON body carrying a boolean "authenticated".
var ErrUnexpectedAnswer = errors.New("unexpected session answer")

// Options configures an HTTPProber. The zero value works.
type Options struct {
	// Client sends the probes; nil uses a client over http.DefaultTransport.
	Client *http.Client
	// Timeout bounds one probe; zero means DefaultTimeout.
	Timeout time.Duration
	// CacheTTL is how long a Valid verdict is cached per instance and cookie
	// values; zero means DefaultCacheTTL, negative disables the cache.
	CacheTTL time.Duration
	// MaxCacheEntries bounds the cache; zero means DefaultMaxCacheEntries.
	MaxCacheEntries int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// HTTPProber asks an instance's GET /api/auth/session whether cookies carry a
// live session. It is safe for concurrent use. Build one with
// NewHTTPProber: the zero value is not usable (its probes would have no
// time at all, and every verdict would be Unknown).
type HTTPProber struct {
	client  *http.Client
	timeout time.Duration
	ttl     time.Duration
	max     int
	now     func() time.Time

	mu    sync.Mutex
	valid map[cacheKeyT]time.Time // cache key -> expiry
}

var _ Prober = (*HTTPProber)(nil)

// NewHTTPProber returns a prober with opts applied over the defaults.
func NewHTTPProber(opts Options) *HTTPProber {
	p := &HTTPProber{client: opts.Client, timeout: opts.Timeout, ttl: opts.CacheTTL,
		max: opts.MaxCacheEntries, now: opts.Now, valid: map[cacheKeyT]time.Time{}}
	if p.client == nil {
		p.client = &http.Client{}
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.ttl == 0 {
		p.ttl = DefaultCacheTTL
	}
	if p.max <= 0 {
		p.max = DefaultMaxCacheEntries
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// sessionAnswer is the part of t3's session answer a probe reads.
type sessionAnswer struct {
	Authenticated *bool `json:"authenticated"`
}

// Check returns Valid on authenticated:true, Invalid only on a definite
// authenticated:false in a 200 JSON body, and Unknown with an error on
// anything else (transport error, timeout, non-200, unparseable body).
func (p *HTTPProber) Check(ctx context.Context, in t3fleet.Instance, cookies []*http.Cookie) (Verdict, error) {
	key := cacheKey(in.BaseURL, cookies)
	if p.cached(key) {
		return Valid, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	// The header built as a request would carry it (AddCookie's quoting).
	hr := &http.Request{Header: http.Header{"Accept": {"application/json"}}}
	for _, c := range cookies {
		hr.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	// A t3 that has just started accepts connections before it answers
	// them: an unanswered attempt is made again on a new connection.
	resp, err := t3fleet.GetAnswered(ctx, p.client, strings.TrimRight(in.BaseURL, "/")+SessionPath, hr.Header)
	if err != nil {
		return Unknown, fmt.Errorf("probe %s: %w", in.User, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return Unknown, fmt.Errorf("probe %s: read: %w", in.User, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Unknown, fmt.Errorf("probe %s: %w: status %d", in.User, ErrUnexpectedAnswer, resp.StatusCode)
	}
	var a sessionAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return Unknown, fmt.Errorf("probe %s: %w: %v", in.User, ErrUnexpectedAnswer, err)
	}
	if a.Authenticated == nil {
		return Unknown, fmt.Errorf("probe %s: %w: no authenticated field", in.User, ErrUnexpectedAnswer)
	}
	if !*a.Authenticated {
		p.forget(key)
		return Invalid, nil
	}
	p.remember(key)
	return Valid, nil
}

func (p *HTTPProber) cached(key cacheKeyT) bool {
	if p.ttl < 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	exp, ok := p.valid[key]
	if ok && p.now().Before(exp) {
		return true
	}
	if ok {
		delete(p.valid, key)
	}
	return false
}

func (p *HTTPProber) remember(key cacheKeyT) {
	if p.ttl < 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if len(p.valid) >= p.max {
		for k, exp := range p.valid {
			if !now.Before(exp) {
				delete(p.valid, k)
			}
		}
		if len(p.valid) >= p.max {
			clear(p.valid) // a burst of distinct cookies: start over rather than grow
		}
	}
	p.valid[key] = now.Add(p.ttl)
}

func (p *HTTPProber) forget(key cacheKeyT) {
	p.mu.Lock()
	delete(p.valid, key)
	p.mu.Unlock()
}

// cacheKeyT is a digest of an instance and a set of cookie values: the
// same size whatever the browser sends (a cookie of a megabyte, one per
// page load, would otherwise be kept as a key 4096 times over).
type cacheKeyT [sha256.Size]byte

// cacheKey identifies an instance and a set of cookie values, independent of
// the order the browser sent them in.
func cacheKey(baseURL string, cookies []*http.Cookie) cacheKeyT {
	h := sha256.New()
	write := func(parts ...string) {
		for _, s := range parts {
			io.WriteString(h, s)
		}
		h.Write([]byte{0})
	}
	write(baseURL)
	if len(cookies) == 1 { // the common case: nothing to sort
		write(cookies[0].Name, "=", cookies[0].Value)
	} else {
		parts := make([]string, 0, len(cookies))
		for _, c := range cookies {
			parts = append(parts, c.Name+"="+c.Value)
		}
		sort.Strings(parts)
		for _, s := range parts {
			write(s)
		}
	}
	var k cacheKeyT
	h.Sum(k[:0])
	return k
}
