package t3test

import (
	"strconv"
	"strings"
)

// Era is a family of t3 builds that behave alike for pairing, auth schema,
// cookie naming and which database is live (T3-CONTRACT.md §5).
type Era string

// The eras a fake instance can play.
const (
	EraA Era = "A" // <= 0.0.24: /api/auth/bootstrap, role, legacy cookie names, ledger max 30
	EraB Era = "B" // 0.0.25..0.0.27: /api/auth/browser-session, role
	EraC Era = "C" // 0.0.28..0.0.35: migrations 31-32, scopes; 31 wipes sessions
	EraD Era = "D" // 0.0.36..0.0.45: per-environment cookie names (PR #8085)
	EraE Era = "E" // >= 0.0.46: live state in userdata/statev2.sqlite
)

// Eras returns every era, oldest first.
func Eras() []Era { return []Era{EraA, EraB, EraC, EraD, EraE} }

// Valid reports whether e is one of the known eras.
func (e Era) Valid() bool {
	switch e {
	case EraA, EraB, EraC, EraD, EraE:
		return true
	}
	return false
}

// EraFor maps a t3 version ("0.0.27", "v0.0.28", "0.0.28-nightly.20260616.571")
// to its era. Nightly builds map by their patch number. Versions past 0.0.x
// (e.g. "0.1.0") are era E; an unparsable version gives "".
func EraFor(version string) Era {
	v := strings.TrimPrefix(strings.TrimSpace(version), "v")
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return ""
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return ""
		}
		n[i] = x
	}
	if n[0] > 0 || n[1] > 0 {
		return EraE
	}
	switch p := n[2]; {
	case p <= 24:
		return EraA
	case p <= 27:
		return EraB
	case p <= 35:
		return EraC
	case p <= 45:
		return EraD
	default:
		return EraE
	}
}

// DefaultVersion is the first stable version of an era ("" for an unknown era).
func DefaultVersion(e Era) string {
	switch e {
	case EraA:
		return "0.0.24"
	case EraB:
		return "0.0.25"
	case EraC:
		return "0.0.28"
	case EraD:
		return "0.0.36"
	case EraE:
		return "0.0.46"
	}
	return ""
}

// SchemaLevel is the ledger max id a database reaches when this era's build
// has migrated it (30 for A/B, 32 for C/D, 34 for E).
func (e Era) SchemaLevel() int {
	ms := migrationsFor(e)
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].ID
}

// PairingPath is the exchange route this era serves.
func (e Era) PairingPath() string {
	if e == EraA {
		return "/api/auth/bootstrap"
	}
	return "/api/auth/browser-session"
}

// UsesScopes reports whether the era's auth tables carry scopes (migration
// 31 and later) instead of a role.
func (e Era) UsesScopes() bool { return e.SchemaLevel() >= 31 }

// PerEnvironmentCookie reports whether the era names its session cookie by
// the per-environment rule of PR #8085 (and still accepts legacy t3_session).
func (e Era) PerEnvironmentCookie() bool { return e == EraD || e == EraE }

// UsesStateV2 reports whether the era's live database is userdata/statev2.sqlite.
func (e Era) UsesStateV2() bool { return e == EraE }

// setsBusyTimeout reports whether the era's builds set busy_timeout=5000;
// older builds do not, so concurrent writers can see SQLITE_BUSY.
func (e Era) setsBusyTimeout() bool { return e.UsesScopes() }
