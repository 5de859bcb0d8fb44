package pairing_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
)

// A dispatch of your own: users from your own table, your own logger and
// metrics registry, the Handler mounted in your own mux on net/http's
// server (pairing.Front is optional).
func ExampleRouterFunc() {
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pairing.EndpointBrowserSession {
			http.SetCookie(w, &http.Cookie{Name: "t3_session", Value: "tok", Path: "/"})
			return
		}
		fmt.Fprintln(w, "the instance's page")
	}))
	defer inst.Close()
	port := inst.Listener.Addr().(*net.TCPAddr).Port

	// Your table: SSO name -> OS user and port.
	type row struct {
		osUser string
		port   int
	}
	users := map[string]row{"ana": {"ana", port}}
	router := pairing.RouterFunc(func(sso string) (t3fleet.Instance, bool) {
		r, ok := users[sso] // "ana@corp.example" arrives as "ana"
		if !ok {
			return t3fleet.Instance{}, false
		}
		return t3fleet.Instance{User: sso, OSUser: r.osUser, BaseURL: "http://127.0.0.1:" + strconv.Itoa(r.port)}, true
	})
	// Your way of minting (adapters/t3.CLIMinter runs the t3 CLI).
	minter := pairing.MinterFunc(func(ctx context.Context, in t3fleet.Instance) (pairing.Credential, error) {
		return pairing.Credential{Secret: "ABCDEFGHJKLM"}, nil
	})

	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // stable output
			}
			return a
		},
	}))
	reg := prometheus.NewRegistry()
	h := pairing.NewHandler(router, pairing.NewPairer(minter, pairing.PairerOptions{}), pairing.HandlerOptions{
		UserHeader: "X-Forwarded-User",
		Logger:     logger,
		Registerer: reg,
	})
	mux := http.NewServeMux()
	mux.Handle("/", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/chat", nil)
	req.Header.Set("X-Forwarded-User", "ana@corp.example")
	req.Header.Set("Sec-Fetch-Dest", "document")
	resp, err := http.DefaultTransport.RoundTrip(req) // no redirect followed
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Location"))
	// Output:
	// level=INFO msg=paired user=ana endpoint=/api/auth/browser-session fallback=false
	// 302 /chat
}
