package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// pairingCreate is `t3 auth pairing create`: it mints a client link in the
// base dir's database (running the build's migrations first) and prints it
// as t3's formatIssuedPairingCredential does.
func pairingCreate(ctx context.Context, b build, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("auth pairing create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	baseDir := fs.String("base-dir", defaultBaseDir(getenv), "state directory")
	ttlText := fs.String("ttl", "", "TTL, for example `5m`, `1h`, `30d`, or `15 minutes`")
	asJSON := fs.Bool("json", false, "emit JSON instead of human-readable output")
	label := fs.String("label", "", "optional human-readable label")
	baseURL := fs.String("base-url", "", "optional public base URL used to print a ready /pair#token=... link")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ttl := t3test.DefaultPairingTTL
	if *ttlText != "" {
		d, err := parseTTL(*ttlText)
		if err != nil {
			fmt.Fprintf(stderr, "t3: --ttl %q: %v\n", *ttlText, err)
			return 1
		}
		ttl = d
	}
	link, err := t3test.CreatePairing(ctx, *baseDir, b.era, t3test.PairingOptions{
		TTL: ttl, Label: *label, FailMigration: b.faults.MigrationFails,
	})
	if err != nil {
		var me *t3test.MigrationError
		if errors.As(err, &me) {
			fmt.Fprintln(stderr, me.Error())
		} else {
			fmt.Fprintln(stderr, "t3:", err)
		}
		return 1
	}
	pairURL := ""
	if *baseURL != "" {
		base, err := url.Parse(*baseURL)
		if err != nil || base.Scheme == "" || base.Host == "" {
			fmt.Fprintf(stderr, "t3: --base-url %q: not an absolute URL\n", *baseURL)
			return 1
		}
		u := base.ResolveReference(&url.URL{Path: "/pair"})
		u.RawQuery, u.Fragment = "", "token="+url.QueryEscape(link.Credential)
		pairURL = u.String()
	}
	// Console.log adds a newline to a text that already ends in one.
	if *asJSON {
		out, _ := json.MarshalIndent(issuedLink{
			ID: link.ID, Credential: link.Credential, Label: link.Label, Role: link.Role,
			Scopes: link.Scopes, ExpiresAt: link.ExpiresAt, PairURL: pairURL,
		}, "", "  ")
		fmt.Fprintf(stdout, "%s\n\n", out)
		return 0
	}
	fmt.Fprintf(stdout, "Issued client pairing token %s.\nToken: %s\n", link.ID, link.Credential)
	if pairURL != "" {
		fmt.Fprintf(stdout, "Pair URL: %s\n", pairURL)
	}
	fmt.Fprintf(stdout, "Expires at: %s\n\n", link.ExpiresAt)
	return 0
}

// issuedLink is the JSON t3 prints for a minted link, in its key order.
type issuedLink struct {
	ID         string   `json:"id"`
	Credential string   `json:"credential"`
	Label      string   `json:"label,omitempty"`
	Role       string   `json:"role,omitempty"`
	Scopes     []string `json:"scopes,omitempty"`
	ExpiresAt  string   `json:"expiresAt"`
	PairURL    string   `json:"pairUrl,omitempty"`
}

// ttlUnits are the units --ttl takes, short and long.
var ttlUnits = map[string]time.Duration{
	"s": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
}

// parseTTL reads "5m", "30d" or "15 minutes": one positive whole number
// and one unit.
func parseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(s[:i], 10, 32)
	unit, ok := ttlUnits[strings.TrimSpace(s[i:])]
	if err != nil || n <= 0 || !ok {
		return 0, errors.New("want a number and a unit, for example 5m, 1h, 30d or 15 minutes")
	}
	return time.Duration(n) * unit, nil
}
