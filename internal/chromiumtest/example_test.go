package chromiumtest_test

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/t3fleet/t3fleet/internal/chromiumtest"
)

// A test opens a tab on the browser Start returns and drives it.
func ExampleStart() {
	var t *testing.T // the test's own
	browser := chromiumtest.Start(t, context.Background())
	tab, closeTab := chromedp.NewContext(browser)
	defer closeTab()
	_ = chromedp.Do(tab, chromedp.Navigate("http://127.0.0.1:3780/"))
	title, _ := chromedp.Run(tab, chromedp.Evaluate[string]("document.title"))
	_ = title
}
