package t3

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
)

// EnvironmentProbe is the watchdog's rollout.Prober: GET the instance's
// environment endpoint, expect a 200 with a JSON object. A listener that
// accepts and never answers fails by ctx's deadline. A connection left
// unanswered is tried again on a new one (t3fleet.GetAnswered): an
// instance that has just started answers only the connections made after
// its handler attached.
type EnvironmentProbe struct {
	// BaseURL finds a unit's instance; an error wrapping
	// rollout.ErrProvisioning is passed on as a provisioning problem
	// (hostfiles.EnvFileBaseURL finds them as the seed's units bind them).
	BaseURL func(u rollout.Unit) (string, error)
	// Client makes the requests; nil means http.DefaultClient.
	Client *http.Client
}

var _ rollout.Prober = EnvironmentProbe{}

// Probe implements rollout.Prober.
func (p EnvironmentProbe) Probe(ctx context.Context, m rollout.Member) error {
	base, err := p.BaseURL(m.Unit)
	if err != nil {
		return err
	}
	if _, err := url.Parse(base); err != nil {
		return fmt.Errorf("%w: %v", rollout.ErrProvisioning, err)
	}
	resp, err := t3fleet.GetAnswered(ctx, p.Client, base+EnvironmentPath, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", m.Unit.User, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: %s answered %d", m.Unit.User, EnvironmentPath, resp.StatusCode)
	}
	var env map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&env); err != nil {
		return fmt.Errorf("probe %s: %s: %w", m.Unit.User, EnvironmentPath, err)
	}
	return nil
}
