package pairing

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet"
)

// EndpointEnvironment is t3's unauthenticated liveness and version probe,
// answered by every build.
const EndpointEnvironment = "/.well-known/t3/environment"

// waitAnswering returns once the instance at baseURL answers a GET of its
// environment endpoint, whatever the status, within timeout: right after a
// restart, t3 accepts connections it will never answer
// (t3fleet.GetAnswered). A refused connection fails at once.
func waitAnswering(ctx context.Context, client *http.Client, baseURL string, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := t3fleet.GetAnswered(wctx, client, strings.TrimRight(baseURL, "/")+EndpointEnvironment, nil)
	if err != nil {
		if wctx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("no answer from the instance within %s (still starting, or wedged): %w", timeout, err)
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	return resp.Body.Close()
}
