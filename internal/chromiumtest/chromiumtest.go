package chromiumtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/t3fleet/t3fleet/internal/realtest"
)

// Path is where Debian's chromium package puts the browser.
const Path = "/usr/bin/chromium"

// Find returns Path, or ends tb when the browser is not there, as
// realtest.Missing does.
func Find(tb testing.TB) string {
	tb.Helper()
	if _, err := os.Stat(Path); err != nil {
		realtest.Missing(tb, "%s not installed: %v (apt-get install -y chromium)", Path, err)
	}
	return Path
}

// Start finds the browser (see Find), starts it under ctx and returns the
// browser's context, on which chromedp.NewContext opens tabs. The browser
// is stopped at cleanup; if the test failed, its output is logged.
func Start(tb testing.TB, ctx context.Context) context.Context {
	tb.Helper()
	path := Find(tb)
	dir := tb.TempDir()
	// Chromium puts unix sockets in TMPDIR (path limit 107 bytes): a short
	// directory of its own, not one under the test's long-named TempDir.
	base := os.TempDir()
	if len(base) > 40 {
		base = "/tmp"
	}
	tmp, err := os.MkdirTemp(base, "t3cr-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(tmp) })
	out := &lockedBuffer{}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Env("TMPDIR="+tmp),
		chromedp.CombinedOutput(out),
	)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	tb.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		if tb.Failed() {
			tb.Logf("chromium output:\n%s", out.String())
		}
	})
	// The first action starts the browser; it must run on the long-lived
	// context (a per-step timeout here would stop the whole browser).
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[string]("navigator.userAgent")); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// lockedBuffer collects the browser's output, written from chromedp's
// goroutine and read at cleanup.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
