package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// build is what this invocation plays, from the environment.
type build struct {
	era     t3test.Era
	version string
	faults  t3test.Faults
	user    string
}

func buildFromEnv(getenv func(string) string) (build, error) {
	b := build{version: getenv("T3FAKE_VERSION"), era: t3test.Era(strings.ToUpper(getenv("T3FAKE_ERA"))), user: getenv("T3FAKE_USER")}
	if b.era == "" && b.version != "" {
		if b.era = t3test.EraFor(b.version); b.era == "" {
			return b, fmt.Errorf("T3FAKE_VERSION %q is not a t3 version", b.version)
		}
	}
	if b.era == "" {
		b.era = t3test.DefaultEra
	}
	if !b.era.Valid() {
		return b, fmt.Errorf("T3FAKE_ERA %q is not one of A..E", b.era)
	}
	if b.version == "" {
		b.version = t3test.DefaultVersion(b.era)
	}
	f, err := t3test.ParseFaults(getenv(t3test.FaultsEnv))
	if err != nil {
		return b, err
	}
	b.faults = f
	return b, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	b, err := buildFromEnv(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "t3:", err)
		return 2
	}
	switch {
	case len(args) == 0:
		fmt.Fprintln(stderr, "usage: t3 [--version] <serve|auth> ...")
		return 2
	case args[0] == "--version" || args[0] == "-v" || args[0] == "version":
		fmt.Fprintf(stdout, "t3 v%s\n", b.version)
		return 0
	case args[0] == "serve":
		return serve(ctx, b, args[1:], getenv, stdout, stderr)
	case len(args) >= 3 && args[0] == "auth" && args[1] == "pairing" && args[2] == "create":
		return pairingCreate(ctx, b, args[3:], getenv, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "t3: %q is not supported by the fake t3 CLI\n", strings.Join(args, " "))
		return 2
	}
}

func defaultBaseDir(getenv func(string) string) string {
	if d := getenv("T3CODE_HOME"); d != "" {
		return d
	}
	return filepath.Join(getenv("HOME"), ".t3")
}

// exitInterrupted is how t3's serve exits after SIGTERM or SIGINT once its
// graceful shutdown has run: its main fiber (NodeRuntime.runMain) is
// interrupted, and Effect 4's default teardown maps an interruption to 130,
// whichever of the two signals it was. Only a shutdown still running after
// its escalation deadline (or a second signal) ends with 143 for SIGTERM.
const exitInterrupted = 130

func serve(ctx context.Context, b build, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", t3test.DefaultHost, "host to bind")
	port := fs.Int("port", 3773, "port to bind (0: any free port)")
	baseDir := fs.String("base-dir", defaultBaseDir(getenv), "state directory")
	mode := fs.String("mode", "web", "web|desktop")
	fs.Bool("no-browser", false, "do not open a browser")
	logLevel := fs.String("log-level", "info", "debug|info|warn|error")
	fs.String("public-url", "", "public URL (ignored by the fake)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "t3: bad --log-level %q\n", *logLevel)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: level}))
	srv, err := t3test.Start(ctx, *baseDir, t3test.Options{
		Era: b.era, Version: b.version, Host: *host, Port: *port, Mode: *mode,
		User: b.user, Faults: b.faults, Logger: logger,
	})
	if err != nil {
		fmt.Fprintln(stderr, "t3:", err)
		return 1
	}
	defer srv.Close()
	select {
	case <-srv.Ready():
	case <-srv.Done():
		fmt.Fprintln(stderr, "t3: server failed to listen")
		return 1
	case <-ctx.Done():
		return exitInterrupted
	}
	// What t3's headless serve prints (formatHeadlessServeOutput), but the
	// QR code of the pairing URL.
	fmt.Fprintf(stdout, "T3 Code server is ready.\nConnection string: %s\n", srv.URL)
	if srv.OwnerPairingURL != "" {
		_, token, _ := strings.Cut(srv.OwnerPairingURL, "#token=")
		fmt.Fprintf(stdout, "Token: %s\nPairing URL: %s\n", token, srv.OwnerPairingURL)
	}
	select {
	case <-ctx.Done():
		return exitInterrupted
	case <-srv.Done():
		fmt.Fprintln(stderr, "t3: server stopped")
		return 1
	}
}
