// Command t3fake is the fake t3 CLI: it answers the argv a real `t3` build
// does (--version, serve, auth pairing create) over a t3test state
// directory. The real argv has no room for the fake's own settings, so it
// takes them from the environment:
//
//	T3FAKE_VERSION  the version it claims (default: the era's first version)
//	T3FAKE_ERA      A..E (default: the era of T3FAKE_VERSION, else E)
//	T3FAKE_FAULTS   comma list: nosetcookie,migration,pairingbroken,wedged,slowstart=2s,deafstart=1s
//	T3FAKE_USER     the user shown on its page (serve only)
//
// Tests build it with t3test.BuildCLI.
package main
