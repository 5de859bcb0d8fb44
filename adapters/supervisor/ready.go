package supervisor

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/t3fleet/t3fleet"
)

// ReadyHTTP returns a readiness check that passes once a GET of url gets
// any answer below 500 (a 401 or 404 still means the server is up). The
// check's own context bounds it; within it, a connection accepted and left
// unanswered, as t3 does before its handler attaches, is tried again on a
// new one (t3fleet.GetAnswered).
func ReadyHTTP(url string) func(ctx context.Context) error {
	client := &http.Client{
		// Readiness is about this listener, not where it redirects to.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return func(ctx context.Context) error {
		resp, err := t3fleet.GetAnswered(ctx, client, url, nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// ReadyTCP returns a readiness check that passes once addr accepts a TCP
// connection.
func ReadyTCP(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}
