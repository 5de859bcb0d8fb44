package t3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/sessionprobe"
)

// Defaults for the dispatch verifier.
const (
	// DefaultUserHeader is the SSO identity header the dispatch trusts.
	DefaultUserHeader = "X-authentik-username"
	// DefaultVerifyTimeout bounds the polling of one verification (ctx may
	// end it sooner).
	DefaultVerifyTimeout = 2 * time.Minute
	// DefaultVerifyMaxBackoff caps the wait between two polls.
	DefaultVerifyMaxBackoff = time.Second
)

// ErrNotPaired is wrapped by a *VerifyError: the dispatch never answered a
// fresh page load with a 302 carrying a t3 session cookie.
var ErrNotPaired = errors.New("dispatch did not pair")

// VerifyError is a failed verification: the user, the last status seen (0
// when no answer came), how many polls were made and the last reason.
type VerifyError struct {
	User   string
	Status int
	Polls  int
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verify pairing for %s: %v after %d polls (last status %d: %s)", e.User, ErrNotPaired, e.Polls, e.Status, e.Reason)
}

func (e *VerifyError) Unwrap() error { return ErrNotPaired }

// DispatchVerifierOptions configures a DispatchVerifier. The zero value works.
type DispatchVerifierOptions struct {
	// Header carries the SSO user; empty means DefaultUserHeader.
	Header string
	// Path is the page requested; empty means "/".
	Path string
	// Timeout bounds the polling; zero means DefaultVerifyTimeout.
	Timeout time.Duration
	// RequestTimeout bounds each poll; zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxBackoff caps the wait between polls; zero means DefaultVerifyMaxBackoff.
	MaxBackoff time.Duration
	// Transport sends the polls; nil means a fresh http.Transport (so no
	// connection outlives a restart of the dispatch's upstream).
	Transport http.RoundTripper
}

// DispatchVerifier checks, through the real dispatch, that a user can pair:
// a cookie-less top-level page load with the user's SSO header must come
// back as a 302 carrying a t3 session Set-Cookie. It polls (short, growing
// waits) until that happens or the deadline passes: a freshly restarted
// instance takes a moment. It implements rollout.Verifier.
type DispatchVerifier struct {
	url    string
	opts   DispatchVerifierOptions
	client *http.Client
}

var _ rollout.Verifier = (*DispatchVerifier)(nil)

// NewDispatchVerifier returns a verifier for the dispatch at baseURL
// (e.g. "http://127.0.0.1:3780"; the updater's T3_DISPATCH).
func NewDispatchVerifier(baseURL string, opts DispatchVerifierOptions) (*DispatchVerifier, error) {
	if !strings.HasPrefix(baseURL, "http://") && !strings.HasPrefix(baseURL, "https://") {
		return nil, fmt.Errorf("dispatch verifier: %q is not an http(s) URL", baseURL)
	}
	if opts.Header == "" {
		opts.Header = DefaultUserHeader
	}
	if opts.Path == "" {
		opts.Path = "/"
	}
	if !strings.HasPrefix(opts.Path, "/") {
		return nil, fmt.Errorf("dispatch verifier: path %q must start with /", opts.Path)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultVerifyTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultVerifyMaxBackoff
	}
	tr := opts.Transport
	if tr == nil {
		tr = &http.Transport{DisableKeepAlives: true}
	}
	client := &http.Client{
		Transport:     tr,
		Timeout:       opts.RequestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &DispatchVerifier{url: strings.TrimRight(baseURL, "/") + opts.Path, opts: opts, client: client}, nil
}

// VerifyPairing polls until the dispatch pairs user, ctx ends or the
// deadline passes. The user name is validated first.
func (v *DispatchVerifier) VerifyPairing(ctx context.Context, user string) error {
	if err := t3fleet.ValidSSOName(user); err != nil {
		return fmt.Errorf("verify pairing: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, v.opts.Timeout)
	defer cancel()
	last := &VerifyError{User: user}
	wait := 25 * time.Millisecond
	for {
		last.Polls++
		status, reason := v.poll(ctx, user)
		if reason == "" {
			return nil
		}
		last.Status, last.Reason = status, reason
		select {
		case <-ctx.Done():
			return last
		case <-time.After(wait):
		}
		if wait *= 2; wait > v.opts.MaxBackoff {
			wait = v.opts.MaxBackoff
		}
	}
}

// poll makes one page load; reason is empty on success.
func (v *DispatchVerifier) poll(ctx context.Context, user string) (status int, reason string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url, nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set(v.opts.Header, user)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	req.Header.Set("Sec-Fetch-Dest", "document")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, err := v.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return resp.StatusCode, fmt.Sprintf("want 302, got %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	for _, c := range resp.Cookies() {
		if sessionprobe.IsSessionCookieName(c.Name) && c.Value != "" {
			return resp.StatusCode, ""
		}
	}
	return resp.StatusCode, "302 without a t3 session cookie"
}
