package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	t3a "github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/rollout"
)

// envProbe is the watchdog's probe as `updater watchdog` does it: the port
// from <envDir>/<user>.env, then GET /.well-known/t3/environment, bounded by
// ctx. A missing env file or port is a provisioning problem, not a wedge.
type envProbe struct {
	envDir string
	client *http.Client
}

func (p envProbe) Probe(ctx context.Context, m rollout.Member) error {
	path, err := hostfiles.EnvFilePath(p.envDir, m.Unit.User)
	if err != nil {
		return fmt.Errorf("%w: %v", rollout.ErrProvisioning, err)
	}
	env, err := hostfiles.ReadEnvFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: no %s", rollout.ErrProvisioning, path)
	}
	port, perr := hostfiles.Port(env)
	if perr != nil {
		return fmt.Errorf("%w: %s: %v", rollout.ErrProvisioning, path, perr)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+t3a.EnvironmentPath, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("environment endpoint answered %d", resp.StatusCode)
	}
	return nil
}
