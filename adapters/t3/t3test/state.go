package t3test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Paths inside a base dir, as a real t3 lays them out.
const (
	StateDBName   = "state.sqlite"   // under userdata/: the live DB of eras A-D
	StateV2DBName = "statev2.sqlite" // under userdata/: the live DB of era E
	// TimeLayout is how t3 writes timestamps: ISO-8601, milliseconds, Z.
	TimeLayout = "2006-01-02T15:04:05.000Z"
	// BusyTimeout is what newer builds (era C on) set; older ones set none.
	BusyTimeout = 5 * time.Second
)

// ErrUnknownEra is returned for an Era outside EraA..EraE.
var ErrUnknownEra = errors.New("t3test: unknown era")

// MigrationError is a failed migration, named as t3 logs it:
// `Migration "31_AuthAuthorizationScopes" failed`. The whole pending batch
// was rolled back.
type MigrationError struct {
	ID   int
	Name string
	Err  error
}

func (e *MigrationError) Error() string {
	return fmt.Sprintf("Migration %q failed: %v", fmt.Sprintf("%d_%s", e.ID, e.Name), e.Err)
}

func (e *MigrationError) Unwrap() error { return e.Err }

// UserDataDir is <baseDir>/userdata.
func UserDataDir(baseDir string) string { return filepath.Join(baseDir, "userdata") }

// StateDB is <baseDir>/userdata/state.sqlite.
func StateDB(baseDir string) string { return filepath.Join(UserDataDir(baseDir), StateDBName) }

// StateV2DB is <baseDir>/userdata/statev2.sqlite.
func StateV2DB(baseDir string) string { return filepath.Join(UserDataDir(baseDir), StateV2DBName) }

// EnvironmentIDFile is <baseDir>/userdata/environment-id (a UUID).
func EnvironmentIDFile(baseDir string) string {
	return filepath.Join(UserDataDir(baseDir), "environment-id")
}

// SecretsDir is <baseDir>/userdata/secrets, which holds the session signing key.
func SecretsDir(baseDir string) string { return filepath.Join(UserDataDir(baseDir), "secrets") }

// LogPath is <baseDir>/userdata/logs/server.log, where the fake serve
// writes its log, as t3 does (its logs/ is a sibling of state.sqlite).
func LogPath(baseDir string) string { return filepath.Join(UserDataDir(baseDir), "logs", "server.log") }

// LiveDB is the database the newest build that touched baseDir uses:
// statev2.sqlite once an era-E build has copied it, else state.sqlite.
func LiveDB(baseDir string) string {
	if _, err := os.Stat(StateV2DB(baseDir)); err == nil {
		return StateV2DB(baseDir)
	}
	return StateDB(baseDir)
}

// liveDBFor is the database a build of era e reads in baseDir.
func liveDBFor(baseDir string, e Era) string {
	if e.UsesStateV2() {
		return StateV2DB(baseDir)
	}
	return StateDB(baseDir)
}

// Migrate brings baseDir's database to era's schema the way a real t3 does at
// start and before every `t3 auth` command: it creates the layout if needed,
// then runs the era's migrations whose id is above the ledger max, all in one
// transaction. A database already past the era (an old build on a migrated
// DB) is left alone. Era E first makes statev2.sqlite as a one-time copy of
// state.sqlite.
func Migrate(ctx context.Context, baseDir string, era Era) error {
	_, err := migrate(ctx, baseDir, era, migrateOptions{})
	return err
}

type migrateOptions struct {
	// fail makes a migration fail, the MigrationFails switch: 31 when it is
	// pending, else the first pending one, else (nothing of the era pending)
	// a migration the build adds past the ledger.
	fail   bool
	logger *slog.Logger
	// waitBusy waits on a locked database even in eras whose builds do not
	// (the server's own Mint helper, which must not race its server).
	waitBusy bool
}

// migrate returns the ledger max after the run.
func migrate(ctx context.Context, baseDir string, era Era, o migrateOptions) (int, error) {
	if !era.Valid() {
		return 0, fmt.Errorf("migrate %s: %w %q", baseDir, ErrUnknownEra, era)
	}
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ensureLayout(baseDir); err != nil {
		return 0, err
	}
	if era.UsesStateV2() {
		if err := copyToStateV2(ctx, baseDir, log); err != nil {
			return 0, err
		}
	}
	conn, err := openDB(liveDBFor(baseDir, era), era)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if o.waitBusy {
		conn.SetBusyTimeout(BusyTimeout)
	}
	conn.SetInterrupt(ctx.Done())
	return runMigrations(conn, era, o.fail, log)
}

func runMigrations(conn *sqlite.Conn, era Era, fail bool, log *slog.Logger) (level int, err error) {
	if err := sqlitex.ExecuteTransient(conn, `CREATE TABLE IF NOT EXISTS effect_sql_migrations (
  migration_id INTEGER PRIMARY KEY NOT NULL,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  name TEXT NOT NULL
)`, nil); err != nil {
		return 0, fmt.Errorf("create migration ledger: %w", err)
	}
	if err := normalizeLegacyLedger(conn, log); err != nil {
		return 0, err
	}
	max, err := ledgerMax(conn)
	if err != nil {
		return 0, err
	}
	var pending []migration
	for _, m := range migrationsFor(era) {
		if m.ID > max {
			pending = append(pending, m)
		}
	}
	if len(pending) == 0 && !fail {
		return max, nil
	}
	end, err := sqlitex.ImmediateTransaction(conn)
	if err != nil {
		return max, fmt.Errorf("begin migrations: %w", err)
	}
	defer end(&err)
	if len(pending) == 0 {
		// Nothing of the era pending: the bad build carries a migration of
		// its own, past the ledger (t3 runs only ids above it), which throws.
		pending = []migration{{ID: max + 1, Name: "NightlyMigration"}}
	}
	failAt := 0 // the fault hits 31_AuthAuthorizationScopes when pending, else the first
	for i, m := range pending {
		if m.ID == 31 {
			failAt = i
		}
	}
	for i, m := range pending {
		log.Info("Running migration " + m.Label())
		if fail && i == failAt {
			err = &MigrationError{ID: m.ID, Name: m.Name, Err: errors.New("SqlError: injected failure (t3test Faults.MigrationFails)")}
			log.Error(err.Error())
			return max, err
		}
		if e := sqlitex.ExecuteScript(conn, m.SQL, nil); e != nil {
			err = &MigrationError{ID: m.ID, Name: m.Name, Err: e}
			log.Error(err.Error())
			return max, err
		}
		if e := sqlitex.Execute(conn, `INSERT INTO effect_sql_migrations (migration_id, name) VALUES (?, ?)`,
			&sqlitex.ExecOptions{Args: []any{m.ID, m.Name}}); e != nil {
			err = &MigrationError{ID: m.ID, Name: m.Name, Err: e}
			log.Error(err.Error())
			return max, err
		}
	}
	last := pending[len(pending)-1].ID
	log.Info(fmt.Sprintf("Migrations applied: %d..%d", pending[0].ID, last))
	return last, nil
}

func ledgerMax(conn *sqlite.Conn) (int, error) {
	var max int
	err := sqlitex.ExecuteTransient(conn, `SELECT COALESCE(MAX(migration_id), 0) FROM effect_sql_migrations`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { max = s.ColumnInt(0); return nil }})
	if err != nil {
		return 0, fmt.Errorf("read migration ledger: %w", err)
	}
	return max, nil
}

// ReadLedgerMax opens the database at path read-only and returns its
// effect_sql_migrations max id (0 when there is no ledger).
func ReadLedgerMax(path string) (int, error) {
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer conn.Close()
	conn.SetBusyTimeout(BusyTimeout)
	max, err := ledgerMax(conn)
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return 0, nil
	}
	return max, err
}

// openDB opens a state database with the era's connection settings: WAL,
// foreign_keys=ON, and busy_timeout only for builds that set it.
func openDB(path string, era Era) (*sqlite.Conn, error) {
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate|sqlite.OpenWAL)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if era.setsBusyTimeout() {
		conn.SetBusyTimeout(BusyTimeout)
	} else {
		conn.SetBusyTimeout(0)
	}
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA foreign_keys = ON", nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open %s: foreign_keys: %w", path, err)
	}
	return conn, nil
}

// ensureLayout creates userdata/, its secrets/ with a signing key, its logs/ and the
// environment-id file, keeping whatever exists.
func ensureLayout(baseDir string) error {
	for _, d := range []string{UserDataDir(baseDir), filepath.Dir(LogPath(baseDir))} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("layout %s: %w", baseDir, err)
		}
	}
	if err := os.MkdirAll(SecretsDir(baseDir), 0o700); err != nil {
		return fmt.Errorf("layout %s: %w", baseDir, err)
	}
	if _, err := os.Stat(EnvironmentIDFile(baseDir)); errors.Is(err, os.ErrNotExist) {
		if err := writeNew(EnvironmentIDFile(baseDir), []byte(newUUID()+"\n"), 0o644); err != nil {
			return err
		}
	}
	if _, err := os.Stat(signingKeyPath(baseDir)); errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := io.ReadFull(rand.Reader, key); err != nil {
			return err
		}
		if err := writeNew(signingKeyPath(baseDir), key, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// writeNew writes a file that must not exist yet; losing a race to another
// process writing the same file is fine.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("layout: %w", err)
	}
	return f.Close()
}

func signingKeyPath(baseDir string) string {
	return filepath.Join(SecretsDir(baseDir), "server-signing-key.bin")
}

// EnvironmentID reads baseDir's environment id.
func EnvironmentID(baseDir string) (string, error) {
	b, err := os.ReadFile(EnvironmentIDFile(baseDir))
	if err != nil {
		return "", fmt.Errorf("environment id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func newUUID() string {
	var b [16]byte
	_, _ = io.ReadFull(rand.Reader, b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// copyToStateV2 makes statev2.sqlite once, as a copy of state.sqlite when
// there is one; state.sqlite is never written by an era-E build afterwards.
func copyToStateV2(ctx context.Context, baseDir string, log *slog.Logger) error {
	dst := StateV2DB(baseDir)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	src := StateDB(baseDir)
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return nil // a fresh install starts on statev2 directly
	}
	tmp := dst + ".tmp"
	_ = os.Remove(tmp)
	conn, err := openDB(src, EraE)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetInterrupt(ctx.Done())
	if err := sqlitex.ExecuteTransient(conn, "VACUUM INTO ?", &sqlitex.ExecOptions{Args: []any{tmp}}); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	log.Info("Copied state.sqlite to statev2.sqlite")
	return nil
}

// formatTime renders t as t3 stores timestamps.
func formatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }
