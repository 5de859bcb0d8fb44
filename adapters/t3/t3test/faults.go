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
}

// FaultsEnv is the environment variable the fake CLI reads its faults from.
const FaultsEnv = "T3FAKE_FAULTS"

// ParseFaults reads a comma list such as
// "nosetcookie,migration,pairingbroken,wedged,slowstart=2s" (the
// T3FAKE_FAULTS syntax). Empty means no faults.
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
		case "slowstart":
			f.SlowStart = 2 * time.Second
			if hasVal {
				d, err := time.ParseDuration(val)
				if err != nil || d < 0 {
					return Faults{}, fmt.Errorf("faults: bad slowstart %q", val)
				}
				f.SlowStart = d
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
	return strings.Join(out, ",")
}
