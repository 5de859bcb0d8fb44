package hostfiles_test

import (
	"github.com/t3fleet/t3fleet/adapters/hostfiles"
	"github.com/t3fleet/t3fleet/pairing"
)

// A dispatch on a shared host honours an identity sent over loopback only
// from the proxy's own OS user (here uid 990, e.g. traefik's).
func ExampleTCPTable() {
	opts := pairing.HandlerOptions{
		PeerOwner:        &hostfiles.TCPTable{},
		TrustedProxyUIDs: []uint32{990},
	}
	_ = opts // pairing.NewHandler(table, pairer, opts)
}
