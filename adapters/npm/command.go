package npm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// DefaultNPM is the npm executable looked up on PATH when Options leave it empty.
const DefaultNPM = "npm"

// DefaultPackage is the npm package that ships the t3 CLI.
const DefaultPackage = "t3"

// DefaultBinName is the name of the package's executable.
const DefaultBinName = "t3"

// Log keys used on every line this package logs.
const (
	LogKeyArgs    = "args"
	LogKeyTook    = "took"
	LogKeyVersion = "version"
	LogKeyExit    = "exit"
)

// CommandError is a failed npm (or t3 --version) run. Stderr is trimmed to its
// last few KB.
type CommandError struct {
	Args     []string
	ExitCode int // -1 when the process did not run or was killed
	Stderr   string
	Err      error
}

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 600 {
		msg = "..." + msg[len(msg)-600:]
	}
	return fmt.Sprintf("%s: exit %d: %v: %s", strings.Join(e.Args, " "), e.ExitCode, e.Err, msg)
}

func (e *CommandError) Unwrap() error { return e.Err }

// runner runs npm with argv, never through a shell, and logs each call's time.
type runner struct {
	npm    string
	env    []string // appended to os.Environ(); nil = inherit only
	logger *slog.Logger
}

func newRunner(npm string, env []string, logger *slog.Logger) runner {
	if npm == "" {
		npm = DefaultNPM
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return runner{npm: npm, env: env, logger: logger}
}

// npmRun runs npm with args and returns its stdout.
func (r runner) npmRun(ctx context.Context, args ...string) ([]byte, error) {
	return r.exec(ctx, r.npm, args...)
}

func (r runner) exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), r.env...)
	// npm runs install scripts in children; on cancel kill the whole group
	// so none of them outlives the call or holds its output open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	argv := append([]string{name}, args...)
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		r.logger.LogAttrs(ctx, slog.LevelWarn, "npm: command failed",
			slog.Any(LogKeyArgs, argv), slog.Duration(LogKeyTook, took), slog.Int(LogKeyExit, code))
		return stdout.Bytes(), &CommandError{Args: argv, ExitCode: code, Stderr: tail(stderr.String(), 4096), Err: err}
	}
	r.logger.LogAttrs(ctx, slog.LevelInfo, "npm: command",
		slog.Any(LogKeyArgs, argv), slog.Duration(LogKeyTook, took))
	return stdout.Bytes(), nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// BinVersion runs `bin --version` and parses the `t3 v<version>` line.
// env is appended to the process environment.
func BinVersion(ctx context.Context, bin string, env []string) (string, error) {
	out, err := newRunner("", env, nil).exec(ctx, bin, "--version")
	if err != nil {
		return "", fmt.Errorf("version of %s: %w", bin, err)
	}
	v, err := ParseVersionOutput(string(out))
	if err != nil {
		return "", fmt.Errorf("version of %s: %w", bin, err)
	}
	return v, nil
}
