package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/pairing"
)

// DefaultAssetPath is what the asset runs fetch. The fake answers every
// unmatched GET with the app's page (about 2 KB, with a Content-Length, as
// a static file server sends it); what matters is the dispatch's decision
// for a subresource (no probe, no redirect, straight proxy).
// -asset-path /.well-known/t3/environment measures a small JSON answer
// instead.
const DefaultAssetPath = "/assets/app.js"

// upstreamChildArg, as the first argument, makes the command serve the fake
// t3 instance instead of measuring: the parent runs the instance in a process
// of its own, as a real t3 serve is, so the dispatch and the instance do not
// share one Go runtime (and its GOMAXPROCS) the way they never do in use.
const upstreamChildArg = "-internal-upstream-child"

// upstreamEra is the build the fake plays (the newest: per-environment
// cookie names, statev2).
const upstreamEra = t3test.DefaultEra

// upstream is the instance the dispatch proxies to.
type upstream struct {
	BaseURL string
	Minter  pairing.Minter
	Close   func()
	Pid     int // the instance's process
}

// dirMinter mints through the fake CLI's code path on the instance's base
// dir (shared DB), as `t3 auth pairing create` does next to a running serve.
type dirMinter struct{ dir string }

func (m dirMinter) Mint(ctx context.Context, in t3fleet.Instance) (pairing.Credential, error) {
	link, err := t3test.CreatePairing(ctx, m.dir, upstreamEra, t3test.PairingOptions{})
	if err != nil {
		return pairing.Credential{}, fmt.Errorf("mint for %s: %w", in.User, err)
	}
	return pairing.Credential{Secret: link.Credential}, nil
}

// startUpstream starts the fake t3 instance in a child process (this
// executable again, with upstreamChildArg) on a new base dir, and returns
// once it answers.
func startUpstream(ctx context.Context, stderr io.Writer) (upstream, error) {
	exe, err := os.Executable()
	if err != nil {
		return upstream{}, err
	}
	dir, err := os.MkdirTemp("", "loadbench-t3-")
	if err != nil {
		return upstream{}, err
	}
	cmd := exec.Command(exe, upstreamChildArg, dir)
	cmd.Env = upstreamEnv(os.Environ())
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe() // closed by Close: the child's cue to stop
	if err != nil {
		os.RemoveAll(dir)
		return upstream{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return upstream{}, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return upstream{}, fmt.Errorf("start fake t3: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	urlc := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		urlc <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case u := <-urlc:
		if !strings.HasPrefix(u, "http://") {
			stop()
			return upstream{}, fmt.Errorf("fake t3 did not start (said %q)", u)
		}
		return upstream{BaseURL: u, Minter: dirMinter{dir: dir}, Close: stop, Pid: cmd.Process.Pid}, nil
	case <-time.After(30 * time.Second):
		stop()
		return upstream{}, errors.New("fake t3 did not start within 30s")
	case <-ctx.Done():
		stop()
		return upstream{}, ctx.Err()
	}
}

// runUpstreamChild serves the fake instance on args[0] (its base dir),
// prints its URL, and stops when stdin closes (the parent is done or gone).
func runUpstreamChild(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "loadbench: upstream child wants one base dir")
		return 2
	}
	srv, err := t3test.Start(ctx, args[0], t3test.Options{Era: upstreamEra, User: benchOSUser})
	if err != nil {
		fmt.Fprintln(stderr, "loadbench: fake t3:", err)
		return 1
	}
	defer srv.Close()
	fmt.Fprintln(stdout, srv.URL)
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stdin); close(eof) }()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	return 0
}

// upstreamEnv is the instance's environment: this process's, but Go
// runtime settings (GODEBUG, GOGC, GOMAXPROCS, GOMEMLIMIT) given for a run
// apply to the dispatch alone. The instance stands in for t3, a Node
// program, whose runtime they would not reach.
func upstreamEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GODEBUG", "GOGC", "GOMAXPROCS", "GOMEMLIMIT":
			continue
		}
		out = append(out, kv)
	}
	return out
}
