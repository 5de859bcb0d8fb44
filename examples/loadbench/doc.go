// Command loadbench measures the dispatch's throughput as a ratio to a direct
// connection, on loopback, with wrk.
//
//	go run ./examples/loadbench                       # 5 rounds of 5 s per side and path
//	go run ./examples/loadbench -runs 5 -duration 10s -v
//	go run ./examples/loadbench -only asset -cpuprofile /tmp/cpu.prof
//	go run ./examples/loadbench -bare                 # a plain httputil.ReverseProxy instead
//	go run ./examples/loadbench -plain-io             # the dispatch reading and writing through net.Conn, not raw system calls
//	go run ./examples/loadbench -relay                # a Go TCP relay parsing no HTTP (goroutines, io.Copy)
//	go run ./examples/loadbench -nginx                # a real nginx (keepalive upstream) in front of the same instance
//	go run ./examples/loadbench -versus-nginx         # the dispatch and nginx in the same rounds: the dispatch's share of nginx's ratio
//
// It starts a fake t3 instance (adapters/t3/t3test) in a process of its own,
// the dispatch in front of it wired as examples/dispatch wires it, pairs one browser session through
// the dispatch, and then runs wrk (keep-alive, fixed duration, connections and
// threads) for each path, through the dispatch and directly against the
// instance, alternating the order every round:
//
//   - asset: GET /assets/app.js with a live cookie, Accept */*,
//     Sec-Fetch-Dest: script (never probed, never redirected);
//   - page: GET / with a live cookie, Sec-Fetch-Dest: document, Accept
//     text/html (probed with the instance's session check; a Valid verdict is
//     cached briefly per cookie).
//
// Each line it prints is the median of the rounds and the median of the
// per-round ratios, e.g.
//
//	asset: proxy 7748 req/s, direct 17549 req/s, ratio 0.44 (target >= 0.60) BELOW TARGET
//
// On a small machine the load generator, the dispatch and the instance share
// the cores, so only the ratio means anything; no absolute figure is pinned.
// Before measuring it checks that every path answers 200 on both sides, since
// wrk counts a 302 as a success. -check exits 1 when a ratio is below its
// target.
//
// It needs wrk (Debian: apt-get install -y wrk) and fails clearly without it.
// It does not measure pairing (see the pairing package's Go benchmarks) nor
// WebSockets.
package main
