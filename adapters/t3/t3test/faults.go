package t3test

import (
	"fmt"
	"strings"
	"time"
)

// Faults switch on the failure modes of T3-CONTRACT.md §5. The zero value is
// a healthy build. Reused and expired credentials need no switch: they get
// 401 because the fake checks them in its database.
type Faults struct {
	// NoSetCookie: the exchange answers 200 but sets no cookie (t3 #7756).
	NoSetCookie bool
	// MigrationFails: a pending migration throws (31 when pending, else the
	// first pending; with nothing of its era pending, a migration the build
	// adds past the ledger, "<max+1>_NightlyMigration") and the batch rolls
	// back, as t3 runs only ids above the ledger's max; serve
	// logs `Migration "31_AuthAuthorizationScopes" failed` and exits 1;
	// `auth pairing create` fails too.
	MigrationFails bool
	// PairingBroken: GET / answers 200 while every exchange answers 500.
	PairingBroken bool
	// Wedged: connections are accepted but no request is ever answered.
	Wedged bool
	// SlowStart delays the listener: connections are refused until then.
	SlowStart time.Duration
	// DeafStart attaches the request handler this long after the setup is
	// done. t3's serve binds its port first, then runs the migrations and
	// builds the rest of its server, and attaches the handler last (t3code
	// #12215); the fake does the same, and DeafStart stretches the window
	// to what a real start takes. A connection accepted before the attach is
	// never answered, not even after it (Node does not replay the request
	// event); one made after it is served. It excludes SlowStart.
	DeafStart time.Duration
}

// FaultsEnv is the environment variable the fake CLI reads its faults from.
const FaultsEnv = "T3FAKE_FAULTS"

// ParseFaults reads a comma list such as
// "nosetcookie,migration,pairingbroken,wedged,slowstart=2s,deafstart=1s"
// (the T3FAKE_FAULTS syntax; a bare slowstart is 2s, a bare deafstart 1s).
// Empty means no faults.
func ParseFaults(s string) (Faults, error) {
	var f Faults
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(strings.ToLower(item))
		name, val, hasVal := strings.Cut(item, "=")
		switch name {
		case "":
		case "nosetcookie":
			f.NoSetCookie = true
		case "migration", "migrationfails":
			f.MigrationFails = true
		case "pairingbroken":
			f.PairingBroken = true
		case "wedged":
			f.Wedged = true
		case "slowstart", "deafstart":
			d := 2 * time.Second
			if name == "deafstart" {
				d = time.Second
			}
			if hasVal {
				var err error
				if d, err = time.ParseDuration(val); err != nil || d < 0 {
					return Faults{}, fmt.Errorf("faults: bad %s %q", name, val)
				}
			}
			if name == "slowstart" {
				f.SlowStart = d
			} else {
				f.DeafStart = d
			}
		default:
			return Faults{}, fmt.Errorf("faults: unknown fault %q", name)
		}
	}
	return f, nil
}

// String renders f in ParseFaults syntax.
func (f Faults) String() string {
	var out []string
	if f.NoSetCookie {
		out = append(out, "nosetcookie")
	}
	if f.MigrationFails {
		out = append(out, "migration")
	}
	if f.PairingBroken {
		out = append(out, "pairingbroken")
	}
	if f.Wedged {
		out = append(out, "wedged")
	}
	if f.SlowStart > 0 {
		out = append(out, "slowstart="+f.SlowStart.String())
	}
	if f.DeafStart > 0 {
		out = append(out, "deafstart="+f.DeafStart.String())
	}
	return strings.Join(out, ",")
}
