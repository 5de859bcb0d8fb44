package pairing_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/t3fleet/t3fleet/pairing"
)

func ExampleFront() {
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "asset for "+r.Header.Get("X-Forwarded-Host"))
	}))
	defer inst.Close()
	router := mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: inst.URL}}
	h := pairing.NewHandler(router, pairing.NewPairer(staticMinter("ABC"), pairing.PairerOptions{}), pairing.HandlerOptions{})

	// /healthz stays with the mux; everything else is the Handler's, carried
	// by the fast path where it can be.
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.Handle("/", h)
	front := pairing.NewFront(h, pairing.FrontOptions{Fallback: mux, Reserved: []string{"/healthz"}})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go front.Serve(ln)
	defer front.Close()

	for _, path := range []string{"/assets/app.js", "/healthz"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+path, nil)
		req.Host = "t3.example"
		req.Header.Set("X-Authentik-Username", "ana")
		req.Header.Set("Cookie", "t3_session=live")
		req.Header.Set("Sec-Fetch-Dest", "script")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, strings.TrimSpace(string(b)))
	}
	// Output:
	// 200 asset for t3.example
	// 200 ok
}
