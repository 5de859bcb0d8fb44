package t3

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
)

// EnvironmentPath is t3's unauthenticated liveness and version probe.
const EnvironmentPath = pairing.EndpointEnvironment

// Defaults for the version-matched minter.
const (
	// DefaultMintTTL is the credential lifetime asked of the CLI.
	DefaultMintTTL = 5 * time.Minute
	// DefaultRequestTimeout bounds one HTTP request to an instance.
	DefaultRequestTimeout = 10 * time.Second
)

// ErrVersionNotInstalled is wrapped when the running instance's own version
// has no binary here. The minter never falls back to another version: a
// newer CLI would migrate the instance's database under it.
var ErrVersionNotInstalled = errors.New("instance's version is not installed")

// ErrBadVersion is wrapped when an instance reports a version that is not a
// plain t3 version string (it would reach a path, a status line or a
// record).
var ErrBadVersion = errors.New("instance reported an unusable version")

var versionRE = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z]+(\.[0-9A-Za-z]+)*)?$`)

// VersionMinterOptions configures a VersionMinter. The zero value runs the
// binary directly as the current user.
type VersionMinterOptions struct {
	// RunAs is an argv prefix the mint runs under, an element exactly
	// "{os_user}" replaced by the instance's OS user, e.g.
	// {"sudo", "-n", "-u", "{os_user}", "--"}.
	RunAs []string
	// TTL is the credential lifetime; zero means DefaultMintTTL.
	TTL time.Duration
	// Timeout bounds the CLI run; zero means DefaultMintTimeout.
	Timeout time.Duration
	// RequestTimeout bounds the version probe; zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Client sends the version probe; nil means a plain client.
	Client *http.Client
	// Env is the CLI's environment; nil inherits the process's.
	Env []string
}

// VersionMinter mints with the binary of the version the instance is
// running: it asks the instance its serverVersion, finds that version's own
// executable with BinFor and runs
// `<RunAs...> <bin> auth pairing create --base-dir <StateDir> --ttl 5m --json`.
// It implements pairing.Minter.
type VersionMinter struct {
	binFor func(version string) (string, error)
	opts   VersionMinterOptions
	client *http.Client
}

var _ pairing.Minter = (*VersionMinter)(nil)

// NewVersionMinter returns a minter that finds a version's executable with
// binFor (e.g. npm.SideBySide.BinFor: <prefix>/versions/<v>/node_modules/.bin/t3).
func NewVersionMinter(binFor func(version string) (string, error), opts VersionMinterOptions) (*VersionMinter, error) {
	if binFor == nil {
		return nil, errors.New("version minter: nil BinFor")
	}
	for _, a := range opts.RunAs {
		if a != PlaceholderOSUser && strings.Contains(a, PlaceholderOSUser) {
			return nil, fmt.Errorf("version minter: placeholder inside %q: placeholders must be whole arguments", a)
		}
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultMintTTL
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultMintTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	c := opts.Client
	if c == nil {
		c = &http.Client{}
	}
	return &VersionMinter{binFor: binFor, opts: opts, client: c}, nil
}

// Version asks the instance at baseURL which version it runs.
func (m *VersionMinter) Version(ctx context.Context, baseURL string) (string, error) {
	return serverVersion(ctx, m.client, m.opts.RequestTimeout, baseURL)
}

// Argv is the command Mint runs for in when it runs version.
func (m *VersionMinter) Argv(in t3fleet.Instance, version string) ([]string, error) {
	if err := t3fleet.ValidOSUser(in.OSUser); err != nil {
		return nil, err
	}
	if in.StateDir == "" || !filepath.IsAbs(in.StateDir) || filepath.Clean(in.StateDir) != in.StateDir {
		return nil, fmt.Errorf("instance %s: state dir %q is not a clean absolute path", in.User, in.StateDir)
	}
	if !versionRE.MatchString(version) {
		return nil, fmt.Errorf("%w: %q", ErrBadVersion, version)
	}
	bin, err := m.binFor(strings.TrimPrefix(version, "v"))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrVersionNotInstalled, version, err)
	}
	if bin == "" {
		return nil, fmt.Errorf("%w: %s", ErrVersionNotInstalled, version)
	}
	argv := make([]string, 0, len(m.opts.RunAs)+9)
	for _, a := range m.opts.RunAs {
		if a == PlaceholderOSUser {
			a = in.OSUser
		}
		argv = append(argv, a)
	}
	return append(argv, bin, "auth", "pairing", "create", "--base-dir", in.StateDir,
		"--ttl", formatTTL(m.opts.TTL), "--json"), nil
}

// Mint asks the instance its version, then mints with that version's binary.
func (m *VersionMinter) Mint(ctx context.Context, in t3fleet.Instance) (pairing.Credential, error) {
	if err := t3fleet.ValidOSUser(in.OSUser); err != nil {
		return pairing.Credential{}, fmt.Errorf("mint for %s: %w", in.User, err)
	}
	v, err := m.Version(ctx, in.BaseURL)
	if err != nil {
		return pairing.Credential{}, fmt.Errorf("mint for %s: %w", in.User, err)
	}
	argv, err := m.Argv(in, v)
	if err != nil {
		return pairing.Credential{}, fmt.Errorf("mint for %s: %w", in.User, err)
	}
	out, err := runCLI(ctx, argv, m.opts.Env, m.opts.Timeout, nil)
	if err != nil {
		return pairing.Credential{}, fmt.Errorf("mint for %s: %w", in.User, err)
	}
	cred, err := ParseMintOutput(out)
	if err != nil {
		return pairing.Credential{}, fmt.Errorf("mint for %s: %w", in.User, err)
	}
	return cred, nil
}

// runCLI runs argv (no shell) as run (as this process when nil; see
// runner.procAttr and runner.dir) and returns its stdout, or a
// *MintCommandError. Its stdout is kept up to maxServeOutput (more is an
// ErrBadMintOutput: no credential is that long) and its stderr up to
// maxCLIStderr, however much it prints before its timeout.
func runCLI(ctx context.Context, argv, env []string, timeout time.Duration, run *runner) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	// The command and what it starts share a process group of their own.
	// At the timeout the group gets SIGTERM, which sudo (the default
	// command) passes on to the CLI it runs; a SIGKILL it could not. Two
	// seconds later the command itself is killed, and once it has ended,
	// whatever of the group is left (and ours to signal).
	cmd.SysProcAttr = run.procAttr()
	cmd.Dir = run.dir()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	stdout, stderr := &boundedBuffer{max: maxServeOutput}, &boundedBuffer{max: maxCLIStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (after %s)", ctx.Err(), timeout)
		}
		return nil, &MintCommandError{Argv: argv, ExitCode: code, Stderr: trimStderr(stderr.Bytes()), Err: err}
	}
	if stdout.Dropped() {
		return nil, fmt.Errorf("%s: %w: more than %d bytes of output", argv[0], ErrBadMintOutput, maxServeOutput)
	}
	return stdout.Bytes(), nil
}

// serverVersion reads serverVersion from GET <baseURL>/.well-known/t3/environment
// within timeout; an attempt accepted and left unanswered, as in the window
// after t3 starts, is sent again (t3fleet.GetAnswered).
func serverVersion(ctx context.Context, c *http.Client, timeout time.Duration, baseURL string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := t3fleet.GetAnswered(ctx, c, strings.TrimRight(baseURL, "/")+EnvironmentPath, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return "", fmt.Errorf("version probe: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("version probe: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("version probe: %s answered %d", EnvironmentPath, resp.StatusCode)
	}
	var env struct {
		ServerVersion string `json:"serverVersion"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return "", fmt.Errorf("version probe: %w", err)
	}
	if env.ServerVersion == "" {
		return "", fmt.Errorf("version probe: %w: empty serverVersion", ErrBadVersion)
	}
	return env.ServerVersion, nil
}

// formatTTL renders d the way the CLI's --ttl takes it ("5m", "90s").
func formatTTL(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// ServerVersion asks the instance at baseURL which version it runs, from
// its unauthenticated environment endpoint (the authoritative answer: the
// version of the process that is running, not of what is installed). A zero
// timeout means DefaultRequestTimeout; a nil client, a plain one. The
// answer is the instance's, so its user's to choose: one that is not a t3
// version string is ErrBadVersion, never text for a status line or a
// record.
func ServerVersion(ctx context.Context, c *http.Client, timeout time.Duration, baseURL string) (string, error) {
	if c == nil {
		c = &http.Client{}
	}
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	v, err := serverVersion(ctx, c, timeout, baseURL)
	if err != nil {
		return "", err
	}
	if !versionRE.MatchString(v) {
		return "", fmt.Errorf("version probe: %w: %q", ErrBadVersion, v)
	}
	return v, nil
}
