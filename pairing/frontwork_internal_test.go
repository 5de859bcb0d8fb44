package pairing

import (
	"bufio"
	"bytes"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/t3fleet/t3fleet"
)

type oneRouter struct{ in t3fleet.Instance }

func (r oneRouter) Route(string) (t3fleet.Instance, bool) { return r.in, true }

// BenchmarkFastPathWork is the fast path's own work for one proxied asset
// request with a live cookie (loadbench's asset shape), without the
// sockets: parse the head, build the request the plan reads, decide, write
// the request for the instance, read and relay a 2 KB answer with a
// Content-Length. loadbench measures the whole; this isolates the part the
// code controls (ns/op and allocs/op).
//
//	go test -run '^$' -bench FastPathWork -benchmem ./pairing/
func BenchmarkFastPathWork(b *testing.B) { benchFastPathWork(b, HandlerOptions{}) }

// BenchmarkFastPathWorkOwnerCheck is the same work with the owner check on
// (HandlerOptions.PeerOwner): it runs once per connection, so a request on
// a connection already checked costs what it costs without it.
func BenchmarkFastPathWorkOwnerCheck(b *testing.B) {
	benchFastPathWork(b, HandlerOptions{PeerOwner: uidOwner(1000), TrustedProxyUIDs: []uint32{1000}})
}

type uidOwner uint32

func (u uidOwner) PeerUID(netip.AddrPort, netip.AddrPort) (uint32, error) { return uint32(u), nil }

func benchFastPathWork(b *testing.B, opts HandlerOptions) {
	h := NewHandler(oneRouter{t3fleet.Instance{User: "bench.user", OSUser: "bench", BaseURL: "http://127.0.0.1:9"}},
		nil, opts)
	f := NewFront(h, FrontOptions{})
	b.Cleanup(func() { f.Close() })
	raw := []byte("GET /assets/app.js HTTP/1.1\r\nHost: 127.0.0.1:3780\r\nAccept: */*\r\nSec-Fetch-Dest: script\r\n" +
		"Sec-Fetch-Mode: no-cors\r\nX-authentik-username: bench.user\r\n" +
		"Cookie: t3_session_3f2a9c=" + strings.Repeat("v", 180) + "\r\n\r\n")
	body := strings.Repeat("x", 2066)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2066\r\nContent-Type: text/html; charset=utf-8\r\n" +
		"Date: Tue, 24 Nov 2026 00:27:03 GMT\r\n\r\n" + body)
	fc := &fastConn{f: f, bw: bufio.NewWriterSize(io.Discard, 16<<10)}
	up := bufio.NewWriterSize(io.Discard, 4<<10)
	rd := bytes.NewReader(resp)
	br := bufio.NewReaderSize(rd, 16<<10)
	once := func() plan {
		hd, ok := parseFastHead(raw, h.identity, fc.reqFields)
		fc.reqFields = hd.fields
		if !ok {
			b.Fatal("the head is not the fast path's")
		}
		r := hd.request(&fc.req, "127.0.0.1:50000")
		user, err := h.identity.name(hd.user)
		p := h.plan(f.ctx, r, user, err)
		writeFastRequest(up, &hd, "127.0.0.1")
		up.Flush()
		rd.Reset(resp)
		br.Reset(rd)
		rh, err := fc.readResponseHead(br, false, false)
		if err == nil {
			err = fc.relayBody(br, rh)
		}
		if err == nil {
			err = fc.bw.Flush()
		}
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	p := once()
	require.Equal(b, planProxy, p.kind, "an asset with a cookie is proxied")
	require.False(b, p.page)
	b.ReportAllocs()
	for b.Loop() {
		once()
	}
}
