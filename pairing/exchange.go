package pairing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/t3fleet/t3fleet/sessionprobe"
)

// The two names t3 has used for its credential exchange. Builds up to 0.0.24
// answer only EndpointBootstrap; 0.0.25 and later only EndpointBrowserSession.
const (
	EndpointBrowserSession = "/api/auth/browser-session"
	EndpointBootstrap      = "/api/auth/bootstrap"
)

// maxErrorBody bounds how much of a failed exchange's body is kept.
const maxErrorBody = 512

// ErrNoSessionCookie is wrapped by an *ExchangeError when the exchange said
// 200 but set no t3 session cookie (t3 issue #7756): the pairing failed.
var ErrNoSessionCookie = errors.New("exchange answered 200 without a session cookie")

// ExchangeError is a failed exchange: the endpoint that gave the verdict, its
// HTTP status (0 when no answer came) and the start of its body.
type ExchangeError struct {
	Endpoint string
	Status   int
	Body     string
	Err      error // the transport error or ErrNoSessionCookie, if any
}

func (e *ExchangeError) Error() string {
	switch {
	case e.Err != nil && e.Status == 0:
		return fmt.Sprintf("exchange at %s: %v", e.Endpoint, e.Err)
	case e.Err != nil:
		return fmt.Sprintf("exchange at %s returned %d: %v", e.Endpoint, e.Status, e.Err)
	default:
		return fmt.Sprintf("exchange at %s returned %d: %s", e.Endpoint, e.Status, e.Body)
	}
}

func (e *ExchangeError) Unwrap() error { return e.Err }

// Exchange trades a one-time credential for a t3 session at baseURL. It posts
// {"credential": ...} to hint first (EndpointBrowserSession when hint is
// empty) and, on 404 only, to the other name. Any other status is that
// endpoint's verdict. A 200 must set at least one t3 session cookie; only
// those cookies are returned. Session.Fallback is true when the old name
// (EndpointBootstrap) gave the session, whether a 404 at the new name sent
// it there in this call or the hint did: the seed's dispatch always tried
// the new name first, so its "fallback=true" meant exactly that, and
// alerts that count it as "instances still before the rename" keep
// counting them after the first pairing.
func Exchange(ctx context.Context, client *http.Client, baseURL, credential, hint string) (*Session, error) {
	if client == nil {
		client = http.DefaultClient
	}
	order := [2]string{EndpointBrowserSession, EndpointBootstrap}
	if hint == EndpointBootstrap {
		order = [2]string{EndpointBootstrap, EndpointBrowserSession}
	}
	body, err := json.Marshal(map[string]string{"credential": credential})
	if err != nil {
		return nil, err
	}
	base := strings.TrimRight(baseURL, "/")
	var last *ExchangeError
	for _, ep := range order {
		s, xerr := exchangeOnce(ctx, client, base+ep, ep, body)
		if xerr == nil {
			s.Fallback = ep == EndpointBootstrap
			return s, nil
		}
		last = xerr
		if xerr.Status != http.StatusNotFound {
			break
		}
	}
	return nil, last
}

func exchangeOnce(ctx context.Context, client *http.Client, url, ep string, body []byte) (*Session, *ExchangeError) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, &ExchangeError{Endpoint: ep, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, &ExchangeError{Endpoint: ep, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, &ExchangeError{Endpoint: ep, Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	cookies := relayable(resp.Cookies())
	if len(cookies) == 0 {
		return nil, &ExchangeError{Endpoint: ep, Status: resp.StatusCode, Err: ErrNoSessionCookie}
	}
	return &Session{Cookies: cookies, Endpoint: ep}, nil
}

// relayable keeps the cookies a pairing may relay to the browser: t3
// session cookies with a value.
func relayable(cookies []*http.Cookie) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range cookies {
		if c != nil && c.Value != "" && sessionprobe.IsSessionCookieName(c.Name) {
			out = append(out, c)
		}
	}
	return out
}
