package t3test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Pairing defaults, as the real CLI has them.
const (
	DefaultPairingTTL = 5 * time.Minute
	// CredentialAlphabet is what a one-time credential's 12 characters are
	// drawn from.
	CredentialAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	CredentialLen      = 12
)

// Roles a pre-31 pairing link or session carries.
const (
	RoleClient = "client"
	RoleOwner  = "owner"
)

// ClientScopes and OwnerScopes are what post-31 links and sessions carry in
// place of the client and owner roles.
func ClientScopes() []string {
	return []string{"environment.read", "orchestration.read", "orchestration.write"}
}

// OwnerScopes is the scope list of an owner link (the serve's pairing URL).
func OwnerScopes() []string { return []string{"owner"} }

// PairingLink is a link `t3 auth pairing create` minted (its --json output
// has the same fields, in t3's order): Role before migration 31, Scopes
// from then on.
type PairingLink struct {
	ID         string   `json:"id"`
	Credential string   `json:"credential"`
	Role       string   `json:"role,omitempty"`
	Scopes     []string `json:"scopes,omitempty"`
	ExpiresAt  string   `json:"expiresAt"`
	Label      string   `json:"label,omitempty"`
}

// PairingOptions tunes CreatePairing; the zero value mints a client link
// valid for DefaultPairingTTL.
type PairingOptions struct {
	TTL    time.Duration // 0 means DefaultPairingTTL
	Owner  bool          // an owner link (what serve prints) instead of a client one
	Label  string
	Now    func() time.Time
	Logger *slog.Logger
	// FailMigration makes the era's migration fail (Faults.MigrationFails).
	FailMigration bool
}

// CreatePairing is `t3 auth pairing create` of an era's build: it opens the
// base dir's database, runs the era's pending migrations (as the real CLI
// does, which is how a newer CLI migrates a DB under an older server), then
// inserts a one-time pairing link. An old build on a forward-migrated DB
// fails here with "table auth_pairing_links has no column named role".
func CreatePairing(ctx context.Context, baseDir string, era Era, opts PairingOptions) (PairingLink, error) {
	return createPairing(ctx, baseDir, era, opts, false)
}

// createPairing is CreatePairing; waitBusy makes it wait on a locked
// database even in eras whose CLI does not.
func createPairing(ctx context.Context, baseDir string, era Era, opts PairingOptions, waitBusy bool) (PairingLink, error) {
	if _, err := migrate(ctx, baseDir, era, migrateOptions{fail: opts.FailMigration, logger: opts.Logger, waitBusy: waitBusy}); err != nil {
		return PairingLink{}, fmt.Errorf("pairing create: %w", err)
	}
	conn, err := openDB(liveDBFor(baseDir, era), era)
	if err != nil {
		return PairingLink{}, fmt.Errorf("pairing create: %w", err)
	}
	defer conn.Close()
	if waitBusy {
		conn.SetBusyTimeout(BusyTimeout)
	}
	conn.SetInterrupt(ctx.Done())
	return insertPairing(conn, era, opts)
}

func insertPairing(conn *sqlite.Conn, era Era, opts PairingOptions) (PairingLink, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = DefaultPairingTTL
	}
	t := now()
	link := PairingLink{ID: newUUID(), Credential: newCredential(), ExpiresAt: formatTime(t.Add(ttl)), Label: opts.Label}
	subject := "pairing-client"
	if opts.Owner {
		subject = "owner"
	}
	var grant string
	q := `INSERT INTO auth_pairing_links (id, credential, method, role, subject, created_at, expires_at, label)
		VALUES (?, ?, 'one-time-token', ?, ?, ?, ?, ?)`
	if era.UsesScopes() {
		link.Scopes = ClientScopes()
		if opts.Owner {
			link.Scopes = OwnerScopes()
		}
		b, _ := json.Marshal(link.Scopes)
		grant = string(b)
		q = `INSERT INTO auth_pairing_links (id, credential, method, scopes, subject, created_at, expires_at, label)
		VALUES (?, ?, 'one-time-token', ?, ?, ?, ?, ?)`
	} else {
		link.Role = RoleClient
		if opts.Owner {
			link.Role = RoleOwner
		}
		grant = link.Role
	}
	var label any
	if opts.Label != "" {
		label = opts.Label
	}
	err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: []any{
		link.ID, link.Credential, grant, subject, formatTime(t), link.ExpiresAt, label}})
	if err != nil {
		return PairingLink{}, &PersistenceSqlError{Op: "create pairing link", Err: err}
	}
	return link, nil
}

func newCredential() string {
	b := make([]byte, CredentialLen)
	max := big.NewInt(int64(len(CredentialAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		b[i] = CredentialAlphabet[n.Int64()]
	}
	return string(b)
}

// PersistenceSqlError is how t3 wraps a failed SQL statement; its text is
// what a health check greps for (e.g. "PersistenceSqlError: create pairing
// link: ... table auth_pairing_links has no column named role").
type PersistenceSqlError struct { //nolint:revive // t3's own name
	Op  string
	Err error
}

func (e *PersistenceSqlError) Error() string {
	return fmt.Sprintf("PersistenceSqlError: %s: %v", e.Op, e.Err)
}

func (e *PersistenceSqlError) Unwrap() error { return e.Err }
