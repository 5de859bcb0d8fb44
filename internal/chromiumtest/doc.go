// Package chromiumtest starts the real headless Chromium that the
// end-to-end tests drive (through chromedp), the one way found to work
// on these machines: Debian's chromium package, no sandbox,
// no GPU, no QUIC, no background networking, its profile and temporary
// files in the test's own temp dir.
//
// Find skips a test when the browser is absent, or fails it when
// T3FLEET_REQUIRE_REAL=1 (as CI sets). Start launches one browser per test
// and stops it at cleanup, showing the browser's own output if the test
// failed.
//
// It is internal: tests of this module use it, and it keeps chromedp out of
// the packages that embedders import (t3test among them).
package chromiumtest
