package pairing

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/t3fleet/t3fleet"
)

// EndpointEnvironment is t3's unauthenticated liveness and version probe,
// answered by every build.
const EndpointEnvironment = "/.well-known/t3/environment"

// waitAnswering returns once the instance at baseURL answers a GET of its
// environment endpoint, whatever the status: right after a restart, t3
// accepts connections it will never answer (t3fleet.GetAnswered). It fails
// only when ctx ends first; any other failure (a refused connection)
// returns nil at once, for the exchange to meet and report as it always has.
func waitAnswering(ctx context.Context, client *http.Client, baseURL string) error {
	resp, err := t3fleet.GetAnswered(ctx, client, strings.TrimRight(baseURL, "/")+EndpointEnvironment, nil)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
		resp.Body.Close()
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("the instance accepted connections but answered none: %w", ctx.Err())
	}
	return nil
}
