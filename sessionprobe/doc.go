// Package sessionprobe answers the two questions the dispatch asks before it
// decides between pairing and proxying: is this request a browser's top-level
// page load ([IsPageLoad]), and does this t3 session cookie still carry a live
// session at its instance ([HTTPProber.Check]).
//
// # Failing open
//
// A probe returns [Invalid] only when the instance definitely said
// authenticated:false in a 200 JSON body. Every other outcome (transport
// error, timeout, non-200, a body without a boolean "authenticated") is
// [Unknown] with an error, and callers proxy the request through: a flaky
// probe must never bounce a user into a redirect loop.
//
// # Example
//
//	p := sessionprobe.NewHTTPProber(sessionprobe.Options{})
//	if sessionprobe.IsPageLoad(r) {
//		v, err := p.Check(ctx, inst, sessionprobe.SessionCookies(r))
//		if v == sessionprobe.Invalid { /* re-pair */ }
//	}
//
// # What it does not do
//
// It does not pair, mint or redirect (see package pairing), and it caches
// only Valid verdicts, briefly, per instance and cookie values: a dead
// session is always asked again.
package sessionprobe
