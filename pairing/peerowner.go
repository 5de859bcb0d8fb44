package pairing

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
)

// PeerOwner tells which OS user owns the other end of a TCP connection made
// on this host: the uid of the socket whose local address is remote and
// whose remote address is local (local being the dispatch's end). An error
// means it cannot tell, and the peer is refused.
//
// adapters/hostfiles.TCPTable reads it from Linux's /proc/net/tcp{,6}.
type PeerOwner interface {
	PeerUID(local, remote netip.AddrPort) (uint32, error)
}

// Why the owner check could not look a peer up.
var (
	errNoPeerOwner = errors.New("no PeerOwner to look the socket up with") // TrustedProxyUIDs alone
	errNoLocalAddr = errors.New("the connection's local address is unknown")
)

// ownerCheck is the loopback owner check of HandlerOptions.PeerOwner and
// TrustedProxyUIDs. Loopback is open to every user of the host (and their
// agents): without it any of them can assert any identity.
type ownerCheck struct {
	owner PeerOwner
	uids  []uint32
	log   *slog.Logger
}

// newOwnerCheck returns the check opts ask for, or nil when they ask for
// none.
func newOwnerCheck(opts HandlerOptions, log *slog.Logger) *ownerCheck {
	if opts.PeerOwner == nil && opts.TrustedProxyUIDs == nil {
		return nil
	}
	return &ownerCheck{owner: opts.PeerOwner, uids: slices.Clone(opts.TrustedProxyUIDs), log: log}
}

// localPeer reports whether remote is a peer on this host whose socket the
// check can look up: a loopback address, the very address it connected to,
// or any other address of this host's. A local process may bind to any of
// them and connect to any other (from 192.0.2.2 to 127.0.0.1, say): the
// address it connected to tells nothing. Any other peer is another
// machine's, honoured on TrustedProxies alone.
func localPeer(local, remote netip.AddrPort) bool {
	r := remote.Addr().Unmap().WithZone("")
	return r.IsLoopback() || r.IsValid() && (r == local.Addr().Unmap().WithZone("") || hostAddress(r))
}

// hostAddress reports whether a is one of this host's addresses, as its
// interfaces have them now. When they cannot be listed, every peer is
// taken for a local one: looked up, and refused when it cannot be.
func hostAddress(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, ia := range addrs {
		var ip net.IP
		switch v := ia.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if x, ok := netip.AddrFromSlice(ip); ok && x.Unmap() == a {
			return true
		}
	}
	return false
}

// allowed decides for one connection, and logs why a peer is refused.
func (oc *ownerCheck) allowed(local, remote netip.AddrPort) bool {
	if !localPeer(local, remote) {
		return true
	}
	var uid uint32
	err := errNoPeerOwner
	switch {
	case !local.IsValid():
		err = errNoLocalAddr
	case oc.owner != nil:
		uid, err = oc.owner.PeerUID(local, remote)
	}
	if err != nil {
		oc.log.Error("identity refused: cannot tell which user owns the peer's socket", "peer", remote.String(), "local", local.String(), "err", err)
		return false
	}
	if !slices.Contains(oc.uids, uid) {
		oc.log.Warn("identity refused: the peer's socket belongs to a user not allowed to assert identities", "peer", remote.String(), "local", local.String(), "uid", uid)
		return false
	}
	return true
}

// connPeer is one connection's ends and the check's verdict on them, taken
// once, on its first request (net/http's path) or as it starts (the fast
// path).
type connPeer struct {
	local, remote netip.AddrPort
	once          sync.Once
	ok            bool
}

func newConnPeer(local, remote net.Addr) *connPeer {
	return &connPeer{local: addrPort(local), remote: addrPort(remote)}
}

func (cp *connPeer) allowed(oc *ownerCheck) bool {
	cp.once.Do(func() { cp.ok = oc.allowed(cp.local, cp.remote) })
	return cp.ok
}

// addrPort is a's address and port; invalid when a is no IP address.
func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case nil:
		return netip.AddrPort{}
	case *net.TCPAddr:
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

type connPeerKey struct{}

// ConnContext gives a connection served by net/http's server what the
// owner check (HandlerOptions.PeerOwner) needs to run once for the whole
// connection rather than on every request: set it as the http.Server's
// ConnContext when serving the Handler on a server of your own (Front does
// so itself). Without it each request is checked on its own. It does
// nothing when the check is off, and it does no I/O.
func (h *Handler) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if h.identity.owners == nil {
		return ctx
	}
	if hc, ok := c.(*handedConn); ok && hc.peer != nil {
		return context.WithValue(ctx, connPeerKey{}, hc.peer) // decided on the fast path
	}
	return context.WithValue(ctx, connPeerKey{}, newConnPeer(c.LocalAddr(), c.RemoteAddr()))
}

// ownerAllows runs the owner check for r: once per connection when the
// server has the Handler's ConnContext, else for r alone.
func (ir *IdentityResolver) ownerAllows(r *http.Request) bool {
	if cp, ok := r.Context().Value(connPeerKey{}).(*connPeer); ok {
		return cp.allowed(ir.owners)
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		// A bare address, as trustedPeer takes it: port 0 never matches a
		// socket, so a local one is refused.
		a, _ := netip.ParseAddr(r.RemoteAddr)
		remote = netip.AddrPortFrom(a, 0)
	}
	return ir.owners.allowed(addrPort(local), remote)
}
