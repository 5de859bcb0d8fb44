package pairing

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// EndpointEnvironment is t3's unauthenticated liveness and version probe,
// answered by every build.
const EndpointEnvironment = "/.well-known/t3/environment"

// firstAnswerAttempt bounds the first request of waitAnswering; each
// attempt after one that timed out gets half as long again.
const firstAnswerAttempt = 250 * time.Millisecond

// waitAnswering returns once the instance at baseURL answers a GET of its
// environment endpoint, whatever the status. t3's serve binds its port
// before it attaches its request handler and never answers a request
// accepted in between (t3code #12215), so right after a restart a
// connection can be accepted and stay silent for good: an attempt that
// times out is sent again, on a new connection, with a longer bound, until
// ctx ends. Any other failure (a refused or reset connection) returns nil
// at once: the exchange then meets it and reports it as it always has.
func waitAnswering(ctx context.Context, client *http.Client, baseURL string) error {
	url := strings.TrimRight(baseURL, "/") + EndpointEnvironment
	for attempt := firstAnswerAttempt; ; attempt += attempt / 2 {
		actx, cancel := context.WithTimeout(ctx, attempt)
		req, err := http.NewRequestWithContext(actx, http.MethodGet, url, nil)
		if err != nil {
			cancel()
			return nil
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
			resp.Body.Close()
		}
		timedOut := actx.Err() != nil
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("the instance accepted connections but answered none: %w", ctx.Err())
		case !timedOut:
			return nil
		}
	}
}
