package pairing_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/internal/realtest"
	"github.com/t3fleet/t3fleet/pairing"
)

// fakeOwner is a PeerOwner that answers uid (or err) and records what it
// was asked.
type fakeOwner struct {
	uid uint32
	err error

	mu    sync.Mutex
	calls [][2]netip.AddrPort // local, remote
}

var _ pairing.PeerOwner = (*fakeOwner)(nil)

func (o *fakeOwner) PeerUID(local, remote netip.AddrPort) (uint32, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, [2]netip.AddrPort{local, remote})
	return o.uid, o.err
}

func (o *fakeOwner) lookups() [][2]netip.AddrPort {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([][2]netip.AddrPort(nil), o.calls...)
}

// claimedListener hands out connections that claim other addresses, as
// one reached from another machine (remote) or at another of this host's
// addresses (local) would; zero values keep the real ones.
type claimedListener struct {
	net.Listener
	local, remote netip.AddrPort
}

func (l claimedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &claimedConn{Conn: c, local: c.LocalAddr(), remote: c.RemoteAddr()}
	if l.local.IsValid() {
		cc.local = net.TCPAddrFromAddrPort(l.local)
	}
	if l.remote.IsValid() {
		cc.remote = net.TCPAddrFromAddrPort(l.remote)
	}
	return cc, nil
}

type claimedConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *claimedConn) LocalAddr() net.Addr  { return c.local }
func (c *claimedConn) RemoteAddr() net.Addr { return c.remote }
func (c *claimedConn) CloseWrite() error    { return c.Conn.(*net.TCPConn).CloseWrite() }

// ownerDispatch is a dispatch for "ana" with the owner check, behind a
// Front on a claimedListener.
type ownerDispatch struct {
	url  string
	inst *fakeInstance
	logs *syncBuffer
	reg  *prometheus.Registry
}

func newOwnerDispatch(t *testing.T, disableFast bool, ln claimedListener, opts pairing.HandlerOptions) *ownerDispatch {
	t.Helper()
	d := &ownerDispatch{inst: newFakeInstance(t, "ana", bs, "t3_session"), logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	opts.Logger = slog.New(slog.NewTextHandler(d.logs, nil))
	opts.Registerer = d.reg
	h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: d.inst.srv.URL}},
		pairing.NewPairer(&fakeMinter{instances: map[string]*fakeInstance{"ana": d.inst}}, pairing.PairerOptions{}), opts)
	real, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln.Listener = real
	f := pairing.NewFront(h, pairing.FrontOptions{DisableFast: disableFast})
	served := make(chan error, 1)
	go func() { served <- f.Serve(ln) }()
	t.Cleanup(func() {
		f.Close()
		require.ErrorIs(t, <-served, http.ErrServerClosed)
	})
	d.url = "http://" + real.Addr().String()
	return d
}

// visit sends a page load as ana over client, with cookies.
func visit(t *testing.T, client *http.Client, url string, cookies []*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/chat", nil)
	require.NoError(t, err)
	req.Header.Set(pairing.DefaultUserHeader, "ana")
	req.Header.Set("Sec-Fetch-Dest", "document")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// TestOwnerCheck: with the check on, a local peer asserts an identity only
// from an allowed uid's socket, and is otherwise answered exactly as an
// untrusted peer is, on both serving paths; another machine's trusted peer
// is not looked up.
func TestOwnerCheck(t *testing.T) {
	var (
		loopback = pairing.DefaultTrustedProxies()
		withLAN  = append(pairing.DefaultTrustedProxies(), netip.MustParsePrefix("10.0.0.0/8"))
		lanPeer  = netip.MustParseAddrPort("10.1.2.3:5000")
		ownAddr  = netip.MustParseAddrPort("10.1.2.3:3780")
		broken   = errors.New("no socket with that address")
	)
	tests := []struct {
		name          string
		owner         *fakeOwner // nil: no PeerOwner
		uids          []uint32
		trusted       []netip.Prefix
		local, remote netip.AddrPort // claimed by the connection; zero: real
		refused       bool
		lookups       int
	}{
		{"allowed uid", &fakeOwner{uid: 1000}, []uint32{0, 1000}, loopback, netip.AddrPort{}, netip.AddrPort{}, false, 1},
		{"another uid", &fakeOwner{uid: 1001}, []uint32{0, 1000}, loopback, netip.AddrPort{}, netip.AddrPort{}, true, 1},
		{"lookup fails", &fakeOwner{err: broken}, []uint32{1000}, loopback, netip.AddrPort{}, netip.AddrPort{}, true, 1},
		{"no uid allowed", &fakeOwner{uid: 1000}, []uint32{}, loopback, netip.AddrPort{}, netip.AddrPort{}, true, 1},
		{"uids without an owner", nil, []uint32{1000}, loopback, netip.AddrPort{}, netip.AddrPort{}, true, 0},
		{"another machine's trusted peer", &fakeOwner{err: broken}, []uint32{1000}, withLAN, netip.AddrPort{}, lanPeer, false, 0},
		{"this host at its own address", &fakeOwner{uid: 1001}, []uint32{1000}, withLAN, ownAddr, lanPeer, true, 1},
		{"this host at its own address, allowed", &fakeOwner{uid: 1000}, []uint32{1000}, withLAN, ownAddr, lanPeer, false, 1},
	}
	for _, mode := range serveModes {
		t.Run(mode.name, func(t *testing.T) {
			// What an untrusted peer gets today: the answer to match.
			untrusted := newOwnerDispatch(t, mode.disableFast, claimedListener{}, pairing.HandlerOptions{TrustedProxies: []netip.Prefix{}})
			wantResp, wantBody := visit(t, noRedirect, untrusted.url, nil)
			require.Equal(t, http.StatusForbidden, wantResp.StatusCode)

			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					opts := pairing.HandlerOptions{TrustedProxies: tc.trusted, TrustedProxyUIDs: tc.uids}
					var owner *fakeOwner
					if tc.owner != nil {
						owner = &fakeOwner{uid: tc.owner.uid, err: tc.owner.err}
						opts.PeerOwner = owner
					}
					d := newOwnerDispatch(t, mode.disableFast, claimedListener{local: tc.local, remote: tc.remote}, opts)
					client := &http.Client{Transport: &http.Transport{}, CheckRedirect: noRedirect.CheckRedirect}
					t.Cleanup(client.CloseIdleConnections)

					resp, body := visit(t, client, d.url, nil)
					if tc.refused {
						assert.Equal(t, wantResp.StatusCode, resp.StatusCode)
						assert.Equal(t, wantBody, body)
						assert.Equal(t, wantResp.Header.Get("Content-Type"), resp.Header.Get("Content-Type"))
						assert.Zero(t, d.inst.hitCount(bs), "nothing minted")
						assert.Contains(t, d.logs.String(), "identity refused")
						peer := tc.remote
						if !peer.IsValid() {
							peer = addrOfClient(t, owner)
						}
						want := "peer=127.0.0.1:" // no lookup made: the client's loopback address, its port unknown here
						if peer.IsValid() {
							want = "peer=" + peer.String()
						}
						assert.Contains(t, d.logs.String(), want)
						if !mode.disableFast {
							assert.Equal(t, 1.0, gatherValue(t, d.reg, pairing.MetricHandoffs, map[string]string{"reason": pairing.HandoffUntrustedPeer}))
						}
					} else {
						require.Equal(t, http.StatusFound, resp.StatusCode, body)
						cookies := sessionCookies(resp)
						require.Len(t, cookies, 1)
						resp, body = visit(t, client, d.url, cookies)
						require.Equal(t, http.StatusOK, resp.StatusCode)
						assert.Contains(t, body, "instance ana path /chat", "proxied")
						assert.NotContains(t, d.logs.String(), "identity refused")
					}
					if owner != nil {
						assert.Len(t, owner.lookups(), tc.lookups)
					}
				})
			}
		})
	}
}

// addrOfClient is the peer the owner was asked about; zero without one.
func addrOfClient(t *testing.T, o *fakeOwner) netip.AddrPort {
	t.Helper()
	if o == nil || len(o.lookups()) == 0 {
		return netip.AddrPort{}
	}
	return o.lookups()[0][1]
}

// The why of a refusal is logged, naming the peer: the uid found, or the
// lookup's error.
func TestOwnerCheckLogsWhy(t *testing.T) {
	tests := []struct {
		name  string
		owner *fakeOwner
		want  []string
	}{
		{"another uid", &fakeOwner{uid: 1001}, []string{"level=WARN", "not allowed", "uid=1001"}},
		{"lookup fails", &fakeOwner{err: errors.New("socket table unreadable")}, []string{"level=ERROR", "cannot tell", `err="socket table unreadable"`}},
	}
	for _, mode := range serveModes {
		for _, tc := range tests {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				owner := &fakeOwner{uid: tc.owner.uid, err: tc.owner.err}
				d := newOwnerDispatch(t, mode.disableFast, claimedListener{}, pairing.HandlerOptions{PeerOwner: owner, TrustedProxyUIDs: []uint32{1000}})
				resp, _ := visit(t, noRedirect, d.url, nil)
				require.Equal(t, http.StatusForbidden, resp.StatusCode)
				calls := owner.lookups()
				require.Len(t, calls, 1)
				var line string
				for l := range strings.SplitSeq(d.logs.String(), "\n") {
					if strings.Contains(l, "identity refused") {
						line = l
					}
				}
				require.NotEmpty(t, line, d.logs.String())
				for _, w := range append(tc.want, "peer="+calls[0][1].String(), "local="+calls[0][0].String()) {
					assert.Contains(t, line, w)
				}
			})
		}
	}
}

// The check runs once per connection, on both paths and across a hand-off
// from the fast path to net/http, and asks about the connection's own two
// ends.
func TestOwnerCheckOncePerConnection(t *testing.T) {
	for _, mode := range serveModes {
		t.Run(mode.name, func(t *testing.T) {
			owner := &fakeOwner{uid: 1000}
			d := newOwnerDispatch(t, mode.disableFast, claimedListener{}, pairing.HandlerOptions{PeerOwner: owner, TrustedProxyUIDs: []uint32{1000}})
			var mu sync.Mutex
			var dialed []net.Conn
			tr := &http.Transport{MaxConnsPerHost: 1, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err == nil {
					mu.Lock()
					dialed = append(dialed, c)
					mu.Unlock()
				}
				return c, err
			}}
			client := &http.Client{Transport: tr, CheckRedirect: noRedirect.CheckRedirect}
			t.Cleanup(tr.CloseIdleConnections)

			resp, _ := visit(t, client, d.url, nil)
			require.Equal(t, http.StatusFound, resp.StatusCode)
			cookies := sessionCookies(resp)
			for range 3 {
				resp, _ = visit(t, client, d.url, cookies)
				require.Equal(t, http.StatusOK, resp.StatusCode)
			}
			// A chunked upload: the fast path hands the connection to
			// net/http, which keeps it.
			req, err := http.NewRequest(http.MethodPost, d.url+"/api/upload", io.MultiReader(strings.NewReader("a body of unknown length")))
			require.NoError(t, err)
			req.Header.Set(pairing.DefaultUserHeader, "ana")
			req.AddCookie(cookies[0])
			resp, err = client.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			if !mode.disableFast {
				require.Equal(t, 1.0, gatherValue(t, d.reg, pairing.MetricHandoffs, map[string]string{"reason": pairing.HandoffRequest}), "handed to net/http")
			}
			resp, _ = visit(t, client, d.url, cookies)
			require.Equal(t, http.StatusOK, resp.StatusCode)

			mu.Lock()
			defer mu.Unlock()
			require.Len(t, dialed, 1, "one connection for every request")
			calls := owner.lookups()
			require.Len(t, calls, 1, "one lookup for the connection")
			assert.Equal(t, dialed[0].RemoteAddr().String(), calls[0][0].String(), "local: the dispatch's end")
			assert.Equal(t, dialed[0].LocalAddr().String(), calls[0][1].String(), "remote: the peer's end")
		})
	}
}

// Served on a server of one's own, the check runs per request, or per
// connection once the server has the Handler's ConnContext.
func TestOwnerCheckOnAnyServer(t *testing.T) {
	for _, tc := range []struct {
		name        string
		connContext bool
		uid         uint32
		status      int
		lookups     int
	}{
		{"per request", false, 1000, http.StatusFound, 3},
		{"per connection", true, 1000, http.StatusFound, 1},
		{"refused per request", false, 1001, http.StatusForbidden, 3},
		{"refused per connection", true, 1001, http.StatusForbidden, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := newFakeInstance(t, "ana", bs, "t3_session")
			owner := &fakeOwner{uid: tc.uid}
			h := pairing.NewHandler(mapRouter{"ana": t3fleet.Instance{User: "ana", OSUser: "ana", BaseURL: inst.srv.URL}},
				pairing.NewPairer(&fakeMinter{instances: map[string]*fakeInstance{"ana": inst}}, pairing.PairerOptions{}),
				pairing.HandlerOptions{PeerOwner: owner, TrustedProxyUIDs: []uint32{1000}, LoopGuardMax: -1})
			srv := httptest.NewUnstartedServer(h)
			if tc.connContext {
				srv.Config.ConnContext = h.ConnContext
			}
			srv.Start()
			t.Cleanup(srv.Close)
			client := &http.Client{Transport: &http.Transport{}, CheckRedirect: noRedirect.CheckRedirect}
			t.Cleanup(client.CloseIdleConnections)
			for range 3 {
				resp, _ := visit(t, client, srv.URL, nil)
				require.Equal(t, tc.status, resp.StatusCode)
			}
			assert.Len(t, owner.lookups(), tc.lookups)
		})
	}
}

// A request that reached the Handler without a server (no local address)
// cannot be looked up: refused.
func TestOwnerCheckWithoutLocalAddress(t *testing.T) {
	owner := &fakeOwner{uid: 1000}
	h := pairing.NewHandler(mapRouter{}, nil, pairing.HandlerOptions{PeerOwner: owner, TrustedProxyUIDs: []uint32{1000}})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	r.Header.Set(pairing.DefaultUserHeader, "ana")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Empty(t, owner.lookups())
}

// A local process may connect to the dispatch's loopback listener from
// another address of this host (bind to it, then connect to 127.0.0.1):
// the peer is then neither loopback nor the address it connected to, and
// yet it is on this host, open to every local user. Where TrustedProxies
// take that address in (a LAN or container network the proxy lives on),
// it must be looked up as any local peer is.
func TestOwnerCheckCoversEveryAddressOfThisHost(t *testing.T) {
	own := nonLoopbackAddr(t)
	for _, mode := range serveModes {
		t.Run(mode.name, func(t *testing.T) {
			owner := &fakeOwner{uid: 1001}
			trusted := append(pairing.DefaultTrustedProxies(), netip.PrefixFrom(own, own.BitLen()))
			d := newOwnerDispatch(t, mode.disableFast, claimedListener{}, pairing.HandlerOptions{
				TrustedProxies: trusted, PeerOwner: owner, TrustedProxyUIDs: []uint32{1000}})
			dialer := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(own, 0))}
			client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}, CheckRedirect: noRedirect.CheckRedirect}
			t.Cleanup(client.CloseIdleConnections)
			resp, body := visit(t, client, d.url, nil)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, body)
			assert.Zero(t, d.inst.hitCount(bs), "nothing minted")
			calls := owner.lookups()
			require.Len(t, calls, 1, "the peer's socket was looked up")
			assert.Equal(t, own, calls[0][1].Addr())
		})
	}
}

// nonLoopbackAddr is an IPv4 address of this host other than loopback, from
// which a connection to 127.0.0.1 can be made.
func nonLoopbackAddr(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if ip = ip.Unmap(); ok && ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			return ip
		}
	}
	realtest.Missing(t, "this host has no IPv4 address but loopback")
	return netip.Addr{}
}
