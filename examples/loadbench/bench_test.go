package main

import (
	"context"
	"io"
	"net/http"
	"testing"
)

// BenchmarkDispatch sends the two measured request shapes through the
// dispatch and directly to the instance, in process, over loopback. The
// difference between proxy and direct (ns/op, allocs/op) is the dispatch's
// cost per request; the allocations counted include the client's and the
// instance's, which both sides share.
//
//	go test -run '^$' -bench Dispatch -benchmem ./examples/loadbench/
func BenchmarkDispatch(b *testing.B) {
	st, err := startStack(context.Background(), io.Discard, stackOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	client := &http.Client{
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, p := range st.Paths(DefaultAssetPath) {
		header := http.Header{}
		for _, h := range p.Headers {
			k, v, _ := cutHeader(h)
			header.Add(k, v)
		}
		for _, side := range []struct{ name, url string }{{"proxy", p.Proxy}, {"direct", p.Direct}} {
			b.Run(p.Name+"/"+side.name, func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, err := http.NewRequest(http.MethodGet, side.url, nil)
						if err != nil {
							b.Error(err)
							return
						}
						req.Header = header.Clone()
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Errorf("%s: status %d", side.url, resp.StatusCode)
							return
						}
					}
				})
			})
		}
	}
}
