package sessionprobe_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/t3fleet/t3fleet/sessionprobe"
)

func ExampleIsPageLoad() {
	nav := httptest.NewRequest(http.MethodGet, "/", nil)
	nav.Header.Set("Sec-Fetch-Dest", "document")
	xhr := httptest.NewRequest(http.MethodGet, "/api/x", nil)
	xhr.Header.Set("Sec-Fetch-Dest", "empty")
	xhr.Header.Set("Accept", "text/html")
	fmt.Println(sessionprobe.IsPageLoad(nav), sessionprobe.IsPageLoad(xhr))
	// Output: true false
}

func ExampleIsSessionCookieName() {
	for _, n := range []string{"t3_session", "t3_session_3801_0123456789ab", "session"} {
		fmt.Println(n, sessionprobe.IsSessionCookieName(n))
	}
	// Output:
	// t3_session true
	// t3_session_3801_0123456789ab true
	// session false
}
