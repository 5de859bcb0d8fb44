package npm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/t3fleet/t3fleet/rollout"
)

// ErrUnknownTag is returned (wrapped) when the channel is not a dist-tag of
// the package.
var ErrUnknownTag = errors.New("unknown dist-tag")

// ErrBadPackument is returned (wrapped) when the registry's answer is not a
// usable package document.
var ErrBadPackument = errors.New("bad package document")

// DefaultRegistryTimeout bounds one request to the registry.
const DefaultRegistryTimeout = 30 * time.Second

// MaxPackumentBytes bounds the package document read from the registry.
const MaxPackumentBytes = 64 << 20

// HTTPError is a non-200 answer from the registry.
type HTTPError struct {
	URL    string
	Status int
	Body   string // the first bytes of the body
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("GET %s: status %d: %s", e.URL, e.Status, strings.TrimSpace(e.Body))
}

// RegistryOptions configure a Registry. The zero value reads the registry URL
// and its auth token from npm's own config and resolves DefaultPackage.
type RegistryOptions struct {
	// URL of the registry, e.g. "http://127.0.0.1:4873/". Empty: asked once
	// from `npm config get registry`.
	URL string
	// Token sent as a Bearer token. Empty: the `//host/path/:_authToken=` line
	// matching URL in npm's user config, if any.
	Token string
	// Package to resolve; default DefaultPackage.
	Package string
	// NPM executable and extra environment for the one `npm config` call.
	NPM string
	Env []string
	// Client for the HTTP requests; default a client with DefaultRegistryTimeout.
	Client *http.Client
	Logger *slog.Logger
}

// Registry resolves dist-tags over the registry's JSON API
// (GET <registry>/<package>: "dist-tags" and "time").
type Registry struct {
	opts   RegistryOptions
	run    runner
	client *http.Client

	mu       sync.Mutex
	resolved bool // URL and Token known
	url      string
	token    string
}

var _ rollout.Registry = (*Registry)(nil)

// NewRegistry returns a Registry; it does not touch npm or the network.
func NewRegistry(opts RegistryOptions) *Registry {
	if opts.Package == "" {
		opts.Package = DefaultPackage
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{Timeout: DefaultRegistryTimeout}
	}
	return &Registry{opts: opts, run: newRunner(opts.NPM, opts.Env, opts.Logger), client: client}
}

// Packument is the part of a registry's package document the Registry reads.
type Packument struct {
	Name     string            `json:"name"`
	DistTags map[string]string `json:"dist-tags"`
	// Time maps each version (and "created", "modified") to its publish
	// time, RFC 3339.
	Time map[string]string `json:"time"`
}

// Resolve returns the version the dist-tag channel points at and its publish
// time (zero when the registry does not say). The tag is read fresh on every
// call: a tag that moved backward is reported as it is.
func (r *Registry) Resolve(ctx context.Context, channel string) (rollout.Release, error) {
	p, err := r.Packument(ctx)
	if err != nil {
		return rollout.Release{}, fmt.Errorf("resolve %s@%s: %w", r.opts.Package, channel, err)
	}
	v, ok := p.DistTags[channel]
	if !ok {
		tags := make([]string, 0, len(p.DistTags))
		for t := range p.DistTags {
			tags = append(tags, t)
		}
		return rollout.Release{}, fmt.Errorf("resolve %s@%s: %w (tags: %s)", r.opts.Package, channel, ErrUnknownTag, strings.Join(slices.Sorted(slices.Values(tags)), ", "))
	}
	if err := ValidVersion(v); err != nil {
		return rollout.Release{}, fmt.Errorf("resolve %s@%s: %w: %w", r.opts.Package, channel, ErrBadPackument, err)
	}
	// A missing or odd publish time is not fatal: the engine treats a zero
	// time as unknown age.
	published, _ := time.Parse(time.RFC3339Nano, p.Time[v])
	return rollout.Release{Version: v, Published: published}, nil
}

// Packument fetches the package document.
func (r *Registry) Packument(ctx context.Context) (*Packument, error) {
	if err := ValidPackage(r.opts.Package); err != nil {
		return nil, err
	}
	base, token, err := r.endpoint(ctx)
	if err != nil {
		return nil, err
	}
	u := strings.TrimSuffix(base, "/") + "/" + url.PathEscape(r.opts.Package)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r.run.logger.LogAttrs(ctx, slog.LevelDebug, "npm: registry GET",
		slog.String("url", u), slog.Int("status", resp.StatusCode), slog.Duration(LogKeyTook, time.Since(start)))
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, &HTTPError{URL: u, Status: resp.StatusCode, Body: string(body)}
	}
	var p Packument
	dec := json.NewDecoder(io.LimitReader(resp.Body, MaxPackumentBytes))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("GET %s: %w: %v", u, ErrBadPackument, err)
	}
	if p.DistTags == nil {
		return nil, fmt.Errorf("GET %s: %w: no dist-tags", u, ErrBadPackument)
	}
	return &p, nil
}

// URL returns the registry URL in use, asking npm config the first time.
func (r *Registry) URL(ctx context.Context) (string, error) {
	u, _, err := r.endpoint(ctx)
	return u, err
}

func (r *Registry) endpoint(ctx context.Context) (string, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.resolved {
		return r.url, r.token, nil
	}
	u, token := r.opts.URL, r.opts.Token
	var cfg npmConfig
	if u == "" {
		out, err := r.run.npmRun(ctx, "config", "get", "registry", "userconfig", "globalconfig")
		if err != nil {
			return "", "", fmt.Errorf("npm config: %w", err)
		}
		cfg = parseConfigGet(string(out))
		u = cfg.registry
		if u == "" {
			return "", "", fmt.Errorf("npm config: no registry in %q", strings.TrimSpace(string(out)))
		}
	}
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return "", "", fmt.Errorf("registry URL %q: not an http(s) URL", u)
	}
	// The user's config over the global one (<npm prefix>/etc/npmrc, where
	// a root service often keeps the token), as npm reads them.
	for _, rc := range []string{cfg.userconfig, cfg.globalconfig} {
		if token == "" && rc != "" {
			token = tokenFromNpmrc(rc, parsed, r.getenv)
		}
	}
	r.url, r.token, r.resolved = u, token, true
	return u, token, nil
}

// getenv looks a variable up as npm sees it: Env over the process's.
func (r *Registry) getenv(key string) string {
	for i := len(r.opts.Env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(r.opts.Env[i], "="); ok && k == key {
			return v
		}
	}
	return os.Getenv(key)
}

// npmConfig is what `npm config get` said of the registry and the config
// files.
type npmConfig struct{ registry, userconfig, globalconfig string }

// parseConfigGet reads `npm config get registry userconfig globalconfig`
// output ("registry=...\nuserconfig=..."; a single key prints only its
// value).
func parseConfigGet(out string) npmConfig {
	var c npmConfig
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "registry="):
			c.registry = strings.TrimPrefix(line, "registry=")
		case strings.HasPrefix(line, "userconfig="):
			c.userconfig = strings.TrimPrefix(line, "userconfig=")
		case strings.HasPrefix(line, "globalconfig="):
			c.globalconfig = strings.TrimPrefix(line, "globalconfig=")
		case c.registry == "" && strings.HasPrefix(line, "http"):
			c.registry = line
		}
	}
	return c
}

// tokenFromNpmrc finds the `//host/path/:_authToken=` line whose host and path
// prefix match u (npm protects the key from `npm config get`). ${VAR} is
// expanded from the environment as npm does.
func tokenFromNpmrc(path string, u *url.URL, getenv func(string) string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	want := "//" + u.Host + u.Path
	best, bestLen := "", -1
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		key, val, ok := strings.Cut(line, "=")
		if !ok || !strings.HasSuffix(strings.TrimSpace(key), ":_authToken") {
			continue
		}
		prefix := strings.TrimSuffix(strings.TrimSpace(key), ":_authToken")
		if !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		w := want
		if !strings.HasSuffix(w, "/") {
			w += "/"
		}
		if strings.HasPrefix(w, prefix) && len(prefix) > bestLen {
			best, bestLen = os.Expand(strings.Trim(strings.TrimSpace(val), `"'`), getenv), len(prefix)
		}
	}
	return best
}
