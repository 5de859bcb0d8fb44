package sessionprobe

import (
	"context"
	"net/http"

	"github.com/t3fleet/t3fleet"
)

// Verdict is what a probe concluded about a session cookie.
type Verdict int

const (
	// Unknown: any doubt (error, timeout, non-200, unparseable body). Callers
	// fail open: proxy the request through.
	Unknown Verdict = iota
	// Valid: the instance said authenticated:true.
	Valid
	// Invalid: the instance said a definite authenticated:false. Re-pair.
	Invalid
)

// Prober checks whether cookies still carry a live session at an instance.
type Prober interface {
	Check(ctx context.Context, in t3fleet.Instance, cookies []*http.Cookie) (Verdict, error)
}

// String returns "unknown", "valid" or "invalid" (metric and log label).
func (v Verdict) String() string {
	switch v {
	case Valid:
		return "valid"
	case Invalid:
		return "invalid"
	default:
		return "unknown"
	}
}
