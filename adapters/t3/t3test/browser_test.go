package t3test_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/internal/chromiumtest"
)

// TestIndexPageInChromium loads the fake's page in a real headless Chromium:
// unauthenticated at first, then paired through the owner pairing URL, with
// the page's fetch() and WebSocket reporting into #session and #ws.
func TestIndexPageInChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	browser := chromiumtest.Start(t, ctx)

	for _, era := range []t3test.Era{t3test.EraA, t3test.EraE} {
		t.Run(string(era), func(t *testing.T) {
			srv := newServer(t, t.TempDir(), t3test.Options{Era: era, User: "emil.barzin"})
			tab, closeTab := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
			defer closeTab()

			require.NoError(t, chromedp.Do(tab, chromedp.Navigate(srv.URL+"/")))
			waitFor(t, tab, "/", "unauthenticated", func(ws string) bool { return ws != "pending" && !strings.HasPrefix(ws, "echo") })

			require.NoError(t, chromedp.Do(tab, chromedp.Navigate(srv.OwnerPairingURL)))
			waitFor(t, tab, "/", "authenticated", func(ws string) bool { return ws == "echo: ping" })
			require.Equal(t, 1, srv.Exchanges())
			require.GreaterOrEqual(t, srv.WebSockets(), 1)
		})
	}
}

// waitFor re-reads the page (a navigation aborts a running evaluation) until
// it shows path, session and a #ws text ws accepts.
func waitFor(t *testing.T, tab context.Context, path, session string, ws func(string) bool) {
	t.Helper()
	var last [3]string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		got, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`(() => {
			const text = id => { const e = document.getElementById(id); return e ? e.textContent : ""; };
			return [location.pathname, text("session"), text("ws")];
		})()`))
		if err == nil && len(got) == 3 {
			copy(last[:], got)
			if got[0] == path && got[1] == session && ws(got[2]) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond) // polling a browser page: the deadline above bounds it
	}
	t.Fatalf("page never showed %s %s: last %q", path, session, last)
}
