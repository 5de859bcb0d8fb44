package hostfiles

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/rollout"
)

// DefaultEnvDir holds the seed's per-user environment files,
// /etc/t3-serve/<user>.env.
const DefaultEnvDir = "/etc/t3-serve"

// PortKey is the variable of an env file that holds the instance's port.
const PortKey = "T3_PORT"

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// EnvFilePath is <dir>/<user>.env (dir DefaultEnvDir when empty), for a
// user that passes t3fleet.ValidOSUser.
func EnvFilePath(dir, user string) (string, error) {
	if err := t3fleet.ValidOSUser(user); err != nil {
		return "", err
	}
	if dir == "" {
		dir = DefaultEnvDir
	}
	return filepath.Join(dir, user+".env"), nil
}

// ReadEnvFile reads a systemd EnvironmentFile-style file.
func ReadEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	return ParseEnvFile(path, b)
}

// ParseEnvFile parses KEY=VALUE lines the way systemd's EnvironmentFile
// reads the seed's files: blank lines and '#'/';' comments ignored, an
// optional leading "export ", a value in matching single or double quotes
// unquoted. Later lines override earlier ones. Valid lines are returned
// even when others are bad; the error then joins a *LineError per skipped
// line. name is used in errors.
func ParseEnvFile(name string, data []byte) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' || text[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(text, "export "), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !envKeyRE.MatchString(k) {
			errs = append(errs, &LineError{Path: name, Line: n, Text: text, Err: ErrMalformedLine})
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("env file: %w", err)
	}
	return out, nil
}

// Port returns the instance port an env file sets (T3_PORT), 1..65535.
func Port(env map[string]string) (int, error) {
	s, ok := env[PortKey]
	if !ok {
		return 0, fmt.Errorf("env file: %s not set", PortKey)
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("env file: %s=%q is not a port", PortKey, s)
	}
	return p, nil
}

// EnvFileBaseURL finds each unit's instance at 127.0.0.1:<the T3_PORT of
// <dir>/<user>.env>, as the seed's units bind it. A missing or unreadable
// file, or one without a valid port, wraps rollout.ErrProvisioning: the
// operator's problem, never counted as a wedged instance.
func EnvFileBaseURL(dir string) func(u rollout.Unit) (string, error) {
	return func(u rollout.Unit) (string, error) {
		path, err := EnvFilePath(dir, u.User)
		if err != nil {
			return "", fmt.Errorf("%w: %v", rollout.ErrProvisioning, err)
		}
		env, err := ReadEnvFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%w: %s does not exist", rollout.ErrProvisioning, path)
		}
		if env == nil && err != nil {
			return "", fmt.Errorf("%w: %v", rollout.ErrProvisioning, err)
		}
		port, perr := Port(env)
		if perr != nil {
			return "", fmt.Errorf("%w: %s: %v", rollout.ErrProvisioning, path, perr)
		}
		return "http://127.0.0.1:" + strconv.Itoa(port), nil
	}
}
