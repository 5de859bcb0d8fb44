package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os/user"
	"strconv"
	"strings"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/pairing"
)

// parseProxyUsers resolves -trusted-proxy-users, comma-separated user
// names or numeric uids, to uids; nil when s is empty (no owner check). A
// name is looked up now, once: an unknown one is an error.
func parseProxyUsers(s string) ([]uint32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	uids := []uint32{}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if f[0] >= '0' && f[0] <= '9' {
			uid, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("-trusted-proxy-users: %q is not a uid", f)
			}
			uids = append(uids, uint32(uid))
			continue
		}
		u, err := user.Lookup(f)
		if err != nil {
			return nil, fmt.Errorf("-trusted-proxy-users: %w", err)
		}
		uid, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("-trusted-proxy-users: user %s has uid %q", f, u.Uid)
		}
		uids = append(uids, uint32(uid))
	}
	if len(uids) == 0 {
		return nil, fmt.Errorf("-trusted-proxy-users: %q names no user", s)
	}
	return uids, nil
}

// withOwnerCheck turns on the owner check for uids (from
// -trusted-proxy-users), or, without them, warns when loopback may assert
// identities: every local user can, then, as anyone.
func withOwnerCheck(opts pairing.HandlerOptions, uids []uint32, log *slog.Logger) pairing.HandlerOptions {
	if uids != nil {
		opts.PeerOwner, opts.TrustedProxyUIDs = &hostfiles.TCPTable{}, uids
		log.Info("identities over loopback are honoured only from the trusted proxy users' sockets", "uids", uids)
		return opts
	}
	if trustsLoopback(opts.TrustedProxies) {
		log.Warn("any local user can assert any identity over loopback: -trusted-proxies includes loopback and "+
			"-trusted-proxy-users is empty; set -trusted-proxy-users to the SSO proxy's OS user",
			"trusted_proxies", fmt.Sprint(opts.TrustedProxies))
	}
	return opts
}

var loopbacks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// trustsLoopback reports whether a loopback peer is among trusted.
func trustsLoopback(trusted []netip.Prefix) bool {
	for _, p := range trusted {
		for _, l := range loopbacks {
			if p.Overlaps(l) {
				return true
			}
		}
	}
	return false
}
