package pairing_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
)

// BenchmarkPair measures the pair path end to end over loopback: a first
// visit, an in-process mint, the exchange at a fake instance, the 302.
func BenchmarkPair(b *testing.B) {
	for _, era := range []struct{ name, exchange string }{{"browser-session", bs}, {"bootstrap", bt}} {
		b.Run(era.name, func(b *testing.B) {
			f := newFakeInstance(b, "ana", era.exchange, "t3_session")
			m := &fakeMinter{instances: map[string]*fakeInstance{"ana": f}}
			router := mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: f.srv.URL}}
			h := pairing.NewHandler(router, pairing.NewPairer(m, pairing.PairerOptions{}),
				pairing.HandlerOptions{LoopGuardMax: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			srv := httptest.NewServer(h)
			b.Cleanup(srv.Close)
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			benchFirstVisits(b, client, srv.URL)
		})
	}
}

// BenchmarkPairer measures ExchangePairer.Pair alone (mint + exchange),
// without the browser-facing hop.
func BenchmarkPairer(b *testing.B) {
	f := newFakeInstance(b, "ana", bs, "t3_session")
	p := pairing.NewPairer(&fakeMinter{instances: map[string]*fakeInstance{"ana": f}}, pairing.PairerOptions{})
	in := t3fleet.Instance{User: "ana", OSUser: "ana", BaseURL: f.srv.URL}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Pair(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProxyLiveCookie measures a proxied asset request with a live
// cookie, the dispatch's hot path.
func BenchmarkProxyLiveCookie(b *testing.B) {
	f := newFakeInstance(b, "ana", bs, "t3_session")
	m := &fakeMinter{instances: map[string]*fakeInstance{"ana": f}}
	router := mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: f.srv.URL}}
	srv := httptest.NewServer(pairing.NewHandler(router, pairing.NewPairer(m, pairing.PairerOptions{}), pairing.HandlerOptions{}))
	b.Cleanup(srv.Close)
	cred := f.mint()
	s, err := pairing.Exchange(context.Background(), nil, f.srv.URL, cred, "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/assets/app.js", nil)
		req.Header.Set(pairing.DefaultUserHeader, "ana")
		req.Header.Set("Sec-Fetch-Dest", "script")
		req.AddCookie(s.Cookies[0])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK { // a 502 or a 302 would time the wrong path
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkPairFront measures a first visit on a new connection through a
// Front's fast path, with the owner check off and on (a PeerOwner that
// answers at once: the check's own cost per connection, without the
// lookup's; adapters/hostfiles' BenchmarkTCPTablePeerUID is the real one).
func BenchmarkPairFront(b *testing.B) {
	for _, mode := range []struct {
		name  string
		owner pairing.PeerOwner
	}{{"owner-check-off", nil}, {"owner-check-on", fixedOwner(1000)}} {
		b.Run(mode.name, func(b *testing.B) {
			f := newFakeInstance(b, "ana", bs, "t3_session")
			m := &fakeMinter{instances: map[string]*fakeInstance{"ana": f}}
			router := mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: f.srv.URL}}
			opts := pairing.HandlerOptions{LoopGuardMax: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if mode.owner != nil {
				opts.PeerOwner, opts.TrustedProxyUIDs = mode.owner, []uint32{1000}
			}
			url := startFront(b, pairing.NewHandler(router, pairing.NewPairer(m, pairing.PairerOptions{}), opts), pairing.FrontOptions{})
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			benchFirstVisits(b, client, url)
		})
	}
}

// benchFirstVisits times a first visit (a page load of ana with no cookie)
// to url per iteration, each of which must end in the pairing's 302.
func benchFirstVisits(b *testing.B, client *http.Client, url string) {
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodGet, url+"/", nil)
		req.Header.Set(pairing.DefaultUserHeader, "ana")
		req.Header.Set("Sec-Fetch-Dest", "document")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// fixedOwner is a PeerOwner that answers one uid and records nothing (a
// fakeOwner's record of calls would grow with b.N and count in allocs/op).
type fixedOwner uint32

func (o fixedOwner) PeerUID(netip.AddrPort, netip.AddrPort) (uint32, error) { return uint32(o), nil }
