package chromiumtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/internal/chromiumtest"
)

func TestStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	browser := chromiumtest.Start(t, ctx)
	tab, closeTab := chromedp.NewContext(browser)
	defer closeTab()
	got, err := chromedp.Run(tab, chromedp.Evaluate[string]("navigator.userAgent"))
	require.NoError(t, err)
	require.Contains(t, got, "HeadlessChrome", "the browser runs headless")
}
