package pairing_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/pairing"
)

// TestIdentityResolver covers who may assert an identity and how.
func TestIdentityResolver(t *testing.T) {
	const h = "X-Authentik-Username"
	tests := []struct {
		name    string
		peer    string
		trusted string // "" = defaults
		headers [][2]string
		want    string
		status  int // 0 = accepted
	}{
		{"plain", "127.0.0.1:5000", "", [][2]string{{h, "ana"}}, "ana", 0},
		{"ipv6 loopback", "[::1]:5000", "", [][2]string{{h, "ana"}}, "ana", 0},
		{"v4-mapped loopback", "[::ffff:127.0.0.1]:5000", "", [][2]string{{h, "ana"}}, "ana", 0},
		{"dots in names", "127.0.0.1:5000", "", [][2]string{{h, "emil.barzin"}}, "emil.barzin", 0},
		{"@domain stripped", "127.0.0.1:5000", "", [][2]string{{h, "emil.barzin@corp.example"}}, "emil.barzin", 0},
		{"trusted custom CIDR", "10.1.2.3:5000", "10.0.0.0/8", [][2]string{{h, "ana"}}, "ana", 0},
		{"untrusted peer", "192.168.1.5:5000", "", [][2]string{{h, "ana"}}, "", http.StatusForbidden},
		{"loopback no longer trusted", "127.0.0.1:5000", "10.0.0.0/8", [][2]string{{h, "ana"}}, "", http.StatusForbidden},
		{"garbage peer", "nonsense", "", [][2]string{{h, "ana"}}, "", http.StatusForbidden},
		{"no header", "127.0.0.1:5000", "", nil, "", http.StatusUnauthorized},
		{"header twice", "127.0.0.1:5000", "", [][2]string{{h, "ana"}, {h, "root"}}, "", http.StatusBadRequest},
		{"header twice, same value", "127.0.0.1:5000", "", [][2]string{{h, "ana"}, {h, "ana"}}, "", http.StatusBadRequest},
		{"underscore look-alike", "127.0.0.1:5000", "", [][2]string{{h, "ana"}, {"X_authentik_username", "root"}}, "", http.StatusBadRequest},
		{"dot look-alike alone", "127.0.0.1:5000", "", [][2]string{{"X.authentik.username", "root"}}, "", http.StatusBadRequest},
		{"squashed look-alike", "127.0.0.1:5000", "", [][2]string{{"Xauthentikusername", "root"}}, "", http.StatusBadRequest},
		{"mixed look-alike", "127.0.0.1:5000", "", [][2]string{{"X-authentik_Username", "root"}}, "", http.StatusBadRequest},
		{"path traversal", "127.0.0.1:5000", "", [][2]string{{h, "../x"}}, "", http.StatusBadRequest},
		{"two @", "127.0.0.1:5000", "", [][2]string{{h, "a@b@c"}}, "", http.StatusBadRequest},
		{"empty local part", "127.0.0.1:5000", "", [][2]string{{h, "@corp.example"}}, "", http.StatusBadRequest},
		{"slash", "127.0.0.1:5000", "", [][2]string{{h, "a/b"}}, "", http.StatusBadRequest},
		{"comma list", "127.0.0.1:5000", "", [][2]string{{h, "ana,root"}}, "", http.StatusBadRequest},
		{"leading dot", "127.0.0.1:5000", "", [][2]string{{h, ".ana"}}, "", http.StatusBadRequest},
		{"empty", "127.0.0.1:5000", "", [][2]string{{h, ""}}, "", http.StatusBadRequest},
		{"too long", "127.0.0.1:5000", "", [][2]string{{h, string(make([]byte, 65))}}, "", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var trusted []netip.Prefix
			if tc.trusted != "" {
				var err error
				trusted, err = pairing.ParseTrustedProxies(tc.trusted)
				require.NoError(t, err)
			}
			ir := pairing.NewIdentityResolver("", trusted)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.peer
			for _, kv := range tc.headers {
				r.Header[kv[0]] = append(r.Header[kv[0]], kv[1]) // raw, as the server would store it
			}
			checkIdentity(t, ir, r, tc.want, tc.status)
		})
	}
}

// checkIdentity resolves r with ir and checks the name it gives (status
// 0) or the status it is refused with; it returns the refusal.
func checkIdentity(t *testing.T, ir *pairing.IdentityResolver, r *http.Request, want string, status int) error {
	t.Helper()
	got, err := ir.User(r)
	if status == 0 {
		require.NoError(t, err)
		assert.Equal(t, want, got)
		return nil
	}
	var ie *pairing.IdentityError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, status, ie.Status, err.Error())
	return err
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := pairing.ParseTrustedProxies("127.0.0.0/8, ::1/128,10.0.0.7")
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.7/32")}, got)
	got, err = pairing.ParseTrustedProxies("")
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.NotNil(t, got, "an empty list trusts no one rather than the defaults")
	_, err = pairing.ParseTrustedProxies("10.0.0.0/33")
	assert.Error(t, err)
}

// TestSpoofingOverTheWire sends the hostile cases through a real listener:
// each is refused before any mint, with a plain-text answer.
func TestSpoofingOverTheWire(t *testing.T) {
	f := newFakeInstance(t, "ana", bs, "t3_session")
	tests := []struct {
		name    string
		headers [][2]string
		trusted string
		want    int
	}{
		{"unknown user", [][2]string{{"X-Authentik-Username", "mallory"}}, "", http.StatusForbidden},
		{"duplicate header", [][2]string{{"X-Authentik-Username", "mallory"}, {"X-Authentik-Username", "ana"}}, "", http.StatusBadRequest},
		{"underscore spelling", [][2]string{{"X_authentik_username", "ana"}}, "", http.StatusBadRequest},
		{"dot spelling", [][2]string{{"X.authentik.username", "ana"}}, "", http.StatusBadRequest},
		{"real plus look-alike", [][2]string{{"X-Authentik-Username", "mallory"}, {"x_authentik_username", "ana"}}, "", http.StatusBadRequest},
		{"hostile name", [][2]string{{"X-Authentik-Username", "../ana"}}, "", http.StatusBadRequest},
		{"a@b@c", [][2]string{{"X-Authentik-Username", "ana@b@c"}}, "", http.StatusBadRequest},
		{"untrusted peer", [][2]string{{"X-Authentik-Username", "ana"}}, "10.0.0.0/8", http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDispatch(t, map[string]*fakeInstance{"ana": f}, func(o *pairing.HandlerOptions) {
				if tc.trusted != "" {
					o.TrustedProxies, _ = pairing.ParseTrustedProxies(tc.trusted)
				}
			})
			req, err := http.NewRequest(http.MethodGet, d.url+"/", nil)
			require.NoError(t, err)
			req.Header.Set("Accept", "text/html")
			for _, kv := range tc.headers {
				req.Header[kv[0]] = append(req.Header[kv[0]], kv[1])
			}
			resp, err := noRedirect.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode)
			assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
			assert.Zero(t, d.minter.calls.Load(), "nothing minted")
		})
	}
}

// TestIdentityHeaderNotForwarded: the instance never sees who the proxy
// thinks the user is, and a hostile OS user in the table never mints.
func TestIdentityHeaderNotForwarded(t *testing.T) {
	f := newFakeInstance(t, "ana", bs, "t3_session")
	d := newDispatch(t, map[string]*fakeInstance{"ana": f}, nil)
	resp, _ := d.get("ana@corp.example", "/", pageLoad, nil)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	resp, _ = d.get("ana", "/x", pageLoad, sessionCookies(resp))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	seen := f.lastHeaders()
	require.NotNil(t, seen)
	assert.Empty(t, seen.Values(pairing.DefaultUserHeader))

	in := d.router["ana"]
	in.OSUser = "../root"
	d.router["ana"] = in
	resp, _ = d.get("ana", "/", pageLoad, nil)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.EqualValues(t, 1, d.minter.calls.Load(), "only the first, valid pairing minted")
}

// An SSO name is letters, digits and ._- only: a value that carries a
// Unicode space around the name ("ana\u00a0", an IdP account distinct from
// "ana") must be refused, never folded into ana's identity. Only ASCII
// space and tab around a field value are HTTP's own whitespace, and both
// parsers strip those already.
func TestIdentityRefusesUnicodeSpaceAroundTheName(t *testing.T) {
	values := []struct{ name, value string }{
		{"no-break space after", "ana\u00a0"},
		{"ideographic space before", "\u3000ana"},
		{"em space after", "ana\u2003"},
		{"next line after", "ana\u0085"},
	}
	for _, m := range serveModes {
		for _, v := range values {
			t.Run(m.name+"/"+v.name, func(t *testing.T) {
				inst := newScriptedInstance(t, nil)
				h := pairing.NewHandler(mapRouter{"ana": {User: "ana", OSUser: "ana", BaseURL: inst.URL()}},
					heldPairer{}, pairing.HandlerOptions{Prober: cookieProber{}})
				url := startFront(t, h, pairing.FrontOptions{DisableFast: m.disableFast})
				raw := "GET /api/data HTTP/1.1\r\nHost: h\r\nX-Authentik-Username: " + v.value +
					"\r\nCookie: t3_session=live\r\nSec-Fetch-Dest: empty\r\n\r\n"
				resps := rawExchange(t, url, raw, http.MethodGet)
				require.Len(t, resps, 1)
				assert.Equal(t, http.StatusBadRequest, resps[0].StatusCode,
					"%q was taken as user ana: %s", v.value, body(t, resps[0]))
				assert.Zero(t, inst.conns.Load(), "the request reached ana's instance")
			})
		}
	}
}

// With UserDomains, an "@domain" suffix is accepted only for a listed
// domain: where the IdP lets anyone pick a name such as
// "ana@elsewhere.example", stripping any suffix would hand them ana's
// instance. Without them, any suffix is stripped, as the seed did.
func TestIdentityUserDomains(t *testing.T) {
	const h = "X-Authentik-Username"
	cases := []struct {
		name    string
		domains []string
		value   string
		want    string
		status  int // 0 = accepted
	}{
		{"no list: any domain stripped", nil, "ana@elsewhere.example", "ana", 0},
		{"listed domain", []string{"corp.example"}, "ana@corp.example", "ana", 0},
		{"listed domain, other case", []string{"Corp.Example"}, "ana@CORP.example", "ana", 0},
		{"second listed domain", []string{"corp.example", "lab.example"}, "ana@lab.example", "ana", 0},
		{"no suffix", []string{"corp.example"}, "ana", "ana", 0},
		{"other domain", []string{"corp.example"}, "ana@elsewhere.example", "", http.StatusForbidden},
		{"listed domain as a prefix", []string{"corp.example"}, "ana@corp.example.evil", "", http.StatusForbidden},
		{"subdomain of a listed one", []string{"corp.example"}, "ana@x.corp.example", "", http.StatusForbidden},
		{"empty domain", []string{"corp.example"}, "ana@", "", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ir := pairing.NewIdentityResolver("", nil).WithUserDomains(tc.domains...)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "127.0.0.1:5000"
			r.Header[h] = []string{tc.value}
			if err := checkIdentity(t, ir, r, tc.want, tc.status); tc.status != 0 {
				assert.ErrorIs(t, err, pairing.ErrUserDomain)
			}
		})
	}
}

// Through the dispatch, on both serving paths: a name under a domain not
// listed is refused before anything is minted.
func TestDispatchRefusesAnUnlistedUserDomain(t *testing.T) {
	for _, mode := range serveModes {
		t.Run(mode.name, func(t *testing.T) {
			f := newFakeInstance(t, "ana", bs, "t3_session")
			d := newDispatchOn(t, map[string]*fakeInstance{"ana": f}, func(o *pairing.HandlerOptions) {
				o.UserDomains = []string{"corp.example"}
			}, pairing.FrontOptions{DisableFast: mode.disableFast})
			resp, body := d.get("ana@elsewhere.example", "/", pageLoad, nil)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, body)
			assert.Zero(t, d.minter.calls.Load(), "nothing minted")
			resp, _ = d.get("ana@corp.example", "/", pageLoad, nil)
			assert.Equal(t, http.StatusFound, resp.StatusCode)
		})
	}
}
