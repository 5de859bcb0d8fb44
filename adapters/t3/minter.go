package t3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
)

// Placeholders a mint argv template may hold, each as a whole element.
const (
	PlaceholderOSUser   = "{os_user}"
	PlaceholderStateDir = "{state_dir}"
)

// DefaultMintCommand is the seed's mint: its t3-mint wrapper, run through
// sudo without a password prompt, printing the t3 CLI's JSON.
const DefaultMintCommand = "sudo -n /usr/local/bin/t3-mint {os_user}"

// DefaultMintTimeout bounds one mint (the CLI opens and may migrate the DB).
const DefaultMintTimeout = 20 * time.Second

// maxStderr bounds how much of the CLI's stderr an error carries.
const maxStderr = 2048

// maxCLIStderr bounds how much of the CLI's stderr is kept to take it from.
const maxCLIStderr = 64 << 10

// ErrBadMintOutput is wrapped when the CLI exited 0 but printed no usable
// credential JSON.
var ErrBadMintOutput = errors.New("mint printed no credential")

// MintCommandError is a mint command that failed to run or exited non-zero.
type MintCommandError struct {
	Argv     []string
	ExitCode int // -1 when it did not exit on its own
	Stderr   string
	Err      error
}

func (e *MintCommandError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Argv[0], e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *MintCommandError) Unwrap() error { return e.Err }

// CLIMinterOptions configures a CLIMinter. The zero value works.
type CLIMinterOptions struct {
	// Timeout bounds one mint; zero means DefaultMintTimeout.
	Timeout time.Duration
	// Env is the command's environment; nil inherits the process's.
	Env []string
}

// CLIMinter mints by running a command (never through a shell) that prints
// the t3 CLI's `auth pairing create --json` answer. It implements
// pairing.Minter.
type CLIMinter struct {
	argv []string
	opts CLIMinterOptions
}

var _ pairing.Minter = (*CLIMinter)(nil)

// SplitCommand splits a command line into argv on spaces, honouring single
// and double quotes (no escapes, no expansion: it is not a shell).
func SplitCommand(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	var quote rune
	inField := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inField = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inField {
				out = append(out, cur.String())
				cur.Reset()
				inField = false
			}
		default:
			cur.WriteRune(r)
			inField = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("command %q: unterminated quote", s)
	}
	if inField {
		out = append(out, cur.String())
	}
	return out, nil
}

// NewCLIMinter returns a minter running argv, where an element that is
// exactly {os_user} or {state_dir} is replaced by the instance's value. A
// placeholder inside a longer element is refused: substitution is by whole
// element only, so a name can never split or join arguments.
func NewCLIMinter(argv []string, opts CLIMinterOptions) (*CLIMinter, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("mint command: empty argv")
	}
	for _, a := range argv {
		if a == PlaceholderOSUser || a == PlaceholderStateDir {
			continue
		}
		if strings.Contains(a, PlaceholderOSUser) || strings.Contains(a, PlaceholderStateDir) {
			return nil, fmt.Errorf("mint command: placeholder inside %q: placeholders must be whole arguments", a)
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultMintTimeout
	}
	return &CLIMinter{argv: append([]string(nil), argv...), opts: opts}, nil
}

// Argv returns the command that would run for in (after validation).
func (m *CLIMinter) Argv(in t3fleet.Instance) ([]string, error) {
	if err := t3fleet.ValidOSUser(in.OSUser); err != nil {
		return nil, err
	}
	out := make([]string, len(m.argv))
	for i, a := range m.argv {
		switch a {
		case PlaceholderOSUser:
			a = in.OSUser
		case PlaceholderStateDir:
			if in.StateDir == "" || !strings.HasPrefix(in.StateDir, "/") {
				return nil, fmt.Errorf("instance %s has no absolute state dir for %s", in.User, PlaceholderStateDir)
			}
			a = in.StateDir
		}
		out[i] = a
	}
	return out, nil
}

// mintAnswer is the part of the CLI's JSON the minter reads.
type mintAnswer struct {
	ID         string          `json:"id"`
	Credential string          `json:"credential"`
	ExpiresAt  json.RawMessage `json:"expiresAt"`
}

// Mint validates the OS user, runs the command and parses its JSON.
func (m *CLIMinter) Mint(ctx context.Context, in t3fleet.Instance) (pairing.Credential, error) {
	argv, err := m.Argv(in)
	if err != nil {
		return pairing.Credential{}, fmt.Errorf("mint for %s: %w", in.User, err)
	}
	out, err := runCLI(ctx, argv, m.opts.Env, m.opts.Timeout, nil)
	if err != nil {
		return pairing.Credential{}, err
	}
	cred, err := ParseMintOutput(out)
	if err != nil {
		return pairing.Credential{}, fmt.Errorf("mint for %s: %w", in.User, err)
	}
	return cred, nil
}

// ParseMintOutput reads the CLI's `auth pairing create --json` answer
// ({id, credential, expiresAt, ...}), skipping any lines before the JSON.
// expiresAt may be an RFC 3339 string or epoch milliseconds.
func ParseMintOutput(out []byte) (pairing.Credential, error) {
	i := bytes.IndexByte(out, '{')
	if i < 0 {
		return pairing.Credential{}, fmt.Errorf("%w: no JSON object in output", ErrBadMintOutput)
	}
	var a mintAnswer
	if err := json.NewDecoder(bytes.NewReader(out[i:])).Decode(&a); err != nil {
		return pairing.Credential{}, fmt.Errorf("%w: %v", ErrBadMintOutput, err)
	}
	if strings.TrimSpace(a.Credential) == "" {
		return pairing.Credential{}, fmt.Errorf("%w: empty credential", ErrBadMintOutput)
	}
	c := pairing.Credential{ID: a.ID, Secret: a.Credential}
	if len(a.ExpiresAt) > 0 && string(a.ExpiresAt) != "null" {
		var s string
		if json.Unmarshal(a.ExpiresAt, &s) == nil {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				c.ExpiresAt = t
			}
		} else if ms, err := strconv.ParseInt(string(a.ExpiresAt), 10, 64); err == nil {
			c.ExpiresAt = time.UnixMilli(ms)
		}
	}
	return c, nil
}

func trimStderr(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > maxStderr {
		s = s[:maxStderr] + "..."
	}
	return s
}
