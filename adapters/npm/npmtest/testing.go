package npmtest

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/t3fleet/t3fleet/internal/realtest"
)

// RequireReal reports whether T3FLEET_REQUIRE_REAL=1: a missing real
// component must then fail the test rather than skip it.
func RequireReal() bool { return realtest.Required() }

// New starts a Verdaccio for the test in a t.TempDir and stops it at
// cleanup. Without Verdaccio it skips the test, or fails it when
// RequireReal. A zero Options logs to tb.Log.
func New(tb testing.TB, opts Options) *Registry {
	tb.Helper()
	if opts.Verdaccio == "" {
		bin, err := FindVerdaccio()
		if err != nil {
			realtest.Missing(tb, "%v", err)
		}
		opts.Verdaccio = bin
	}
	if opts.Logger == nil {
		opts.Logger = Logger(tb)
	}
	r, err := Start(context.Background(), tb.TempDir(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
}

// Logger returns a logger that writes through tb.Log, so npm call times show
// up with -v or on failure.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
