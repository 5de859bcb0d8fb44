// Package pairing puts every SSO user into their own t3 instance, already
// paired: it works out who a request is from, which instance is theirs, and
// either proxies the request there or, when the browser has no live session,
// mints a one-time credential, exchanges it for a session cookie and sends
// the browser back where it was.
//
// # Flow
//
// [Handler] runs the dispatch's flow for each request:
//
//   - identity ([IdentityResolver]): the TCP peer must be a trusted proxy
//     (and, with HandlerOptions.PeerOwner, a peer on this host must own its
//     socket as an allowed OS user, once per connection: loopback is open to
//     every local user), the user header present once under its exact name (look-alike
//     spellings such as X_authentik_username are refused), "@domain"
//     stripped, the name valid;
//   - route ([Router], e.g. adapters/hostfiles.DispatchTable, or a
//     [RouterFunc] over a table of your own);
//   - no t3 session cookie on a navigation: pair; a cookie on a top-level
//     page load: probe it, and pair only on a definite authenticated:false;
//     anything else (XHR, assets, WebSockets) is proxied, never redirected;
//   - pair ([Pairer], e.g. [ExchangePairer] over a [Minter]): one in flight
//     per user, shared by everyone waiting; a user paired too often in a
//     short window gets an error page instead of another redirect.
//
// [Exchange] is the credential exchange on its own (browser-session, then
// bootstrap on 404, a session Set-Cookie required), for health checks that
// need the same step.
//
// # Serving it
//
// [Front] serves a Handler on a listener with a fast path for the steady
// state: a GET or HEAD, or a body with a Content-Length, for a known user,
// that the Handler
// would proxy (or pair, or refuse) is read, decided by the Handler's own
// code and relayed on one goroutine per connection, over the
// [UpstreamTransport]'s pool; anything else (WebSockets, chunked bodies,
// unusual heads) is handed, with its bytes, to a net/http server. On Linux
// the fast path and the UpstreamTransport read and write their TCP sockets
// with raw system calls under the runtime's poller, which keeps Go's sysmon
// thread asleep under load ([FrontOptions].PlainIO turns that off). The
// Handler is also an ordinary http.Handler for any server.
//
//	pairer := pairing.NewPairer(minter, pairing.PairerOptions{})
//	h := pairing.NewHandler(table, pairer, pairing.HandlerOptions{Logger: logger, Registerer: prometheus.DefaultRegisterer})
//	ln, _ := net.Listen("tcp", ":3780")
//	pairing.NewFront(h, pairing.FrontOptions{Fallback: mux, Reserved: []string{"/healthz", "/metrics"}}).Serve(ln)
//
// # Log lines
//
// With a slog text handler the lines read as the seed's alerts expect:
// `msg=paired user=U endpoint=E fallback=B`, `msg="mint for U failed: ..."`,
// `msg="pairing for U returned STATUS (endpoint=E)"`, `msg="ws open" user=U`
// and `msg="ws close" user=U duration=D closed_by=client|upstream`.
//
// # What it does not do
//
// It does not exec or read host files: minting is a [Minter] (see
// adapters/t3.CLIMinter) and routing a [Router]. It does not serve /metrics
// or /healthz; the main does. It never answers a non-navigation with a
// redirect and never builds a redirect from anything but the request's own
// path and query.
package pairing
