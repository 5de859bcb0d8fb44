package t3test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// WritePrefix writes one build per version (WriteBuild of cli into
// <prefix>/versions/<v>/t3) and points <prefix>/current at first: the
// side-by-side layout a unit's command line, <prefix>/current/t3, names.
func WritePrefix(prefix, cli string, builds map[string]Faults, first string) error {
	for v, f := range builds {
		if _, err := WriteBuild(filepath.Join(prefix, "versions", v), cli, v, f); err != nil {
			return err
		}
	}
	return SwitchCurrent(prefix, first)
}

// SwitchCurrent points <prefix>/current at versions/<version> atomically (a
// new link renamed over the old one), as an installer does.
func SwitchCurrent(prefix, version string) error {
	tmp := filepath.Join(prefix, "current.tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Join("versions", version), tmp); err != nil {
		return fmt.Errorf("switch current: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(prefix, "current")); err != nil {
		return fmt.Errorf("switch current: %w", err)
	}
	return nil
}

// ServerVersion asks the server at baseURL which build answers: the
// serverVersion of its PathEnvironment.
func ServerVersion(ctx context.Context, baseURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+PathEnvironment, nil)
	if err != nil {
		return "", fmt.Errorf("server version: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("server version: %w", err)
	}
	defer resp.Body.Close()
	var env struct {
		ServerVersion string `json:"serverVersion"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return "", fmt.Errorf("server version: %w", err)
	}
	return env.ServerVersion, nil
}
