package pairing_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
)

// staticMinter hands out a fixed credential.
type staticMinter string

func (m staticMinter) Mint(context.Context, t3fleet.Instance) (pairing.Credential, error) {
	return pairing.Credential{Secret: string(m)}, nil
}

func ExampleNewHandler() {
	// An "instance" that accepts credential ABC at the new exchange name.
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pairing.EndpointBrowserSession {
			http.SetCookie(w, &http.Cookie{Name: "t3_session", Value: "tok", Path: "/"})
			return
		}
		http.NotFound(w, r)
	}))
	defer inst.Close()

	router := mapRouter{"emil.barzin": {User: "emil.barzin", OSUser: "emil", BaseURL: inst.URL}}
	h := pairing.NewHandler(router, pairing.NewPairer(staticMinter("ABC"), pairing.PairerOptions{}), pairing.HandlerOptions{})

	req := httptest.NewRequest(http.MethodGet, "/chat?id=7", nil)
	req.RemoteAddr = "127.0.0.1:40000" // the SSO proxy on loopback
	req.Header.Set("X-authentik-username", "emil.barzin@corp.example")
	req.Header.Set("Sec-Fetch-Dest", "document")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	fmt.Println(rec.Code, rec.Header().Get("Location"), rec.Result().Cookies()[0].Name)
	// Output: 302 /chat?id=7 t3_session
}

func ExampleExchange() {
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pairing.EndpointBootstrap { // an era-A build
			http.SetCookie(w, &http.Cookie{Name: "t3_session_3801_0123456789ab", Value: "tok", Path: "/"})
			return
		}
		http.NotFound(w, r)
	}))
	defer inst.Close()

	s, err := pairing.Exchange(context.Background(), inst.Client(), inst.URL, "ABCDEFGHJKLM", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Endpoint, s.Fallback, s.Cookies[0].Name)
	// Output: /api/auth/bootstrap true t3_session_3801_0123456789ab
}
