package t3test_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// A populated era-C database: the ledger shows migrations 31 and 32 applied.
func ExampleSeedState() {
	dir, err := os.MkdirTemp("", "t3test-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := t3test.SeedState(dir, t3test.EraC, t3test.SeedOptions{Threads: 2}); err != nil {
		panic(err)
	}
	level, err := t3test.ReadLedgerMax(t3test.LiveDB(dir))
	if err != nil {
		panic(err)
	}
	fmt.Println(level)
	// Output: 32
}

func ExampleEraFor() {
	fmt.Println(t3test.EraFor("0.0.24"), t3test.EraFor("0.0.28-nightly.20260616.571"), t3test.EraFor("0.0.46"))
	// Output: A C E
}

// A fake instance in era A pairs only at /api/auth/bootstrap; the session
// check then reports the role.
func ExampleNewServer() {
	dir, err := os.MkdirTemp("", "t3test-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	srv := t3test.NewServer(dir, t3test.Options{Era: t3test.EraA})
	defer srv.Close()

	cred, err := srv.Mint(0)
	if err != nil {
		panic(err)
	}
	for _, path := range []string{t3test.PathBrowserSession, t3test.PathBootstrap} {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(`{"credential":"`+cred+`"}`))
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode, len(resp.Cookies()) == 1 && resp.Cookies()[0].Name == srv.CookieName())
	}
	// Output:
	// /api/auth/browser-session 404 false
	// /api/auth/bootstrap 200 true
}
