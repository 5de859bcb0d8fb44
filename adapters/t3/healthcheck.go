package t3

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"zombiezen.com/go/sqlite"

	"github.com/t3fleet/t3fleet/pairing"
	"github.com/t3fleet/t3fleet/rollout"
	"github.com/t3fleet/t3fleet/statebackup"
)

// Defaults for the health checker.
const (
	// DefaultHealthTempDir holds the scratch base dirs: on disk, not tmpfs,
	// because the seed can be large.
	DefaultHealthTempDir = "/var/tmp"
	// DefaultReadyTimeout bounds the wait for the scratch serve to answer.
	DefaultReadyTimeout = 60 * time.Second
	// DefaultStopGrace is how long the scratch serve gets after SIGTERM
	// before SIGKILL.
	DefaultStopGrace = 5 * time.Second
	// maxServeOutput bounds how much of the serve's output is kept.
	maxServeOutput = 1 << 20
)

// MigrationErrorPatterns are the log fragments (matched case-insensitively)
// that fail a health check: a build that cannot migrate real data, or an old
// build on a forward-migrated database. t3's own `Migration "<id>_<Name>"
// failed` line fails it too.
func MigrationErrorPatterns() []string {
	return []string{"migration failed", "failed to migrate", "no column named",
		"NOT NULL constraint failed", "PersistenceSqlError"}
}

// namedMigrationFailed matches `Migration "31_AuthAuthorizationScopes" failed`,
// also with the quotes escaped as a structured logger writes them.
var namedMigrationFailed = regexp.MustCompile(`(?i)migration \\?"[^"\\]*\\?" failed`)

// HealthCheckerOptions configures a HealthChecker. The zero value works.
type HealthCheckerOptions struct {
	// TempDir holds the scratch base dirs; empty means DefaultHealthTempDir.
	TempDir string
	// ReadyTimeout bounds the wait for the serve to answer; zero means
	// DefaultReadyTimeout (ctx may end it sooner).
	ReadyTimeout time.Duration
	// RequestTimeout bounds each HTTP request; zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MintTimeout bounds the CLI mint; zero means DefaultMintTimeout.
	MintTimeout time.Duration
	// StopGrace is the SIGTERM-to-SIGKILL grace; zero means DefaultStopGrace.
	StopGrace time.Duration
	// ServeArgs are extra arguments after the serve argv (e.g. "--no-browser").
	ServeArgs []string
	// Env is the children's environment. Nil inherits the process's when
	// it runs them as itself; run as another user (RunAs), they get only
	// its PATH, TZ, LANG, LANGUAGE and LC_*, with HOME a scratch directory
	// of that user's, and USER and LOGNAME theirs.
	Env []string
	// RunAs is who the serve and the CLI run as when this process is root;
	// nil means the seed file's owner (the data is theirs, so whatever it
	// makes the build do, it does with their rights), or nobody when root
	// owns the seed. A UID of 0 runs them as root. Not root, this process
	// runs them as itself. Either way the user must be able to reach the
	// build and TempDir (a directory others can pass, as /var/tmp).
	RunAs *statebackup.Owner
	// Logger gets one line per step; nil discards.
	Logger *slog.Logger
}

// HealthChecker runs a staged build on a scratch copy of a real database:
// `<bin> serve --host 127.0.0.1 --port <free> --base-dir <scratch>`, then
// checks its log for migration errors, mints with the build's own CLI,
// exchanges (browser-session, bootstrap on 404), requires a session cookie
// that GET /api/auth/session accepts, and reads the migration ledger. A
// serve that loses its port to another process before binding it (the port
// was free when picked) gets another, up to three; losing all three is an
// error, not a verdict on the build. Run as root, it runs the build as a
// user (HealthCheckerOptions.RunAs), never as root. It implements
// rollout.HealthChecker.
type HealthChecker struct {
	opts HealthCheckerOptions
	log  *slog.Logger
}

var _ rollout.HealthChecker = (*HealthChecker)(nil)

// NewHealthChecker returns a HealthChecker.
func NewHealthChecker(opts HealthCheckerOptions) *HealthChecker {
	if opts.TempDir == "" {
		opts.TempDir = DefaultHealthTempDir
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.MintTimeout <= 0 {
		opts.MintTimeout = DefaultMintTimeout
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = DefaultStopGrace
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HealthChecker{opts: opts, log: log}
}

// Check runs the check. A build that fails it gives Passed false with a
// Reason and a nil error; an error means the check itself could not run
// (no scratch space, unreadable seed), with Passed false too.
func (h *HealthChecker) Check(ctx context.Context, b rollout.Build, seed string) (rollout.HealthReport, error) {
	start := time.Now()
	rep, err := h.check(ctx, b, seed)
	rep.Took = time.Since(start)
	if err != nil {
		rep.Passed = false
		if rep.Reason == "" {
			rep.Reason = err.Error()
		}
		return rep, fmt.Errorf("health check %s: %w", b.Version, err)
	}
	if rep.Passed {
		h.log.Info("health check passed", "version", b.Version, "endpoint", rep.Endpoint, "cookie", rep.Cookie, "schema", rep.Schema, "took", rep.Took)
	} else {
		h.log.Warn("health check failed", "version", b.Version, "reason", rep.Reason, "took", rep.Took)
	}
	return rep, nil
}

func fail(format string, args ...any) rollout.HealthReport {
	return rollout.HealthReport{Reason: fmt.Sprintf(format, args...)}
}

func (h *HealthChecker) check(ctx context.Context, b rollout.Build, seed string) (rep rollout.HealthReport, err error) {
	if b.Bin == "" {
		return rollout.HealthReport{}, fmt.Errorf("build %s has no binary", b.Version)
	}
	scratch, err := os.MkdirTemp(h.opts.TempDir, "t3-health-")
	if err != nil {
		return rollout.HealthReport{}, fmt.Errorf("scratch: %w", err)
	}
	defer os.RemoveAll(scratch)
	// A serve or CLI that ran out of scratch space says nothing of the
	// build: a failed verdict would dead-end and drop a good one.
	var logs func() string
	defer func() {
		if err != nil || rep.Passed {
			return
		}
		text := rep.Reason
		if logs != nil {
			text += "\n" + logs()
		}
		if line := scratchShort(text); line != "" {
			err = fmt.Errorf("scratch %s: out of space or failing: %s", scratch, line)
		}
	}()
	base := filepath.Join(scratch, "base")
	// The seed is copied first and only the copy is read: its directory is
	// its user's, who could swap the file between two opens.
	copied := filepath.Join(base, "userdata", "state.sqlite")
	owner, err := copySeed(seed, copied)
	if err != nil {
		return rollout.HealthReport{}, err
	}
	before, err := readLedgerMax(ctx, copied)
	if err != nil {
		return rollout.HealthReport{}, fmt.Errorf("seed %s, copied to %s: %w", seed, copied, err)
	}
	if err := quiesceCopy(ctx, filepath.Join(base, "userdata")); err != nil {
		return rollout.HealthReport{}, err
	}
	// The build runs as a user, never as root (account); the scratch tree
	// becomes theirs, and every later read in it is made with their rights.
	run := h.account(owner)
	if run != nil {
		if err := run.handOver(scratch, base); err != nil {
			return rollout.HealthReport{}, err
		}
	}
	env := h.env(run)
	// 1. It answers, without migration errors and without exiting, on a
	// port of its own (another try on another if one is taken meanwhile).
	sp, rep, err := h.startReady(ctx, b, base, run, env)
	if sp == nil {
		return rep, err
	}
	defer h.stop(sp)
	baseURL := sp.baseURL
	logs = sp.logs
	client := sp.client
	// 2. Mint with the build's own CLI.
	mintOut, err := runCLI(ctx, []string{b.Bin, "auth", "pairing", "create", "--base-dir", base, "--ttl", formatTTL(DefaultMintTTL), "--json"},
		env, h.opts.MintTimeout, run)
	if err != nil {
		return fail("mint: %v", err), nil
	}
	cred, err := ParseMintOutput(mintOut)
	if err != nil {
		return fail("mint: %v", err), nil
	}
	// 3. Exchange, with the rename fallback; a session cookie is required.
	sess, err := pairing.Exchange(ctx, client, baseURL, cred.Secret, "")
	if err != nil {
		if line := matchPattern(logs()); line != "" {
			return fail("pairing: %v; log: %s", err, line), nil
		}
		return fail("pairing: %v", err), nil
	}
	rep = rollout.HealthReport{Endpoint: sess.Endpoint, Cookie: sess.Cookies[0].Name}
	// 4. The session endpoint accepts the cookie, and names it.
	authed, name, err := sessionCheck(ctx, client, baseURL, sess.Cookies)
	if err != nil {
		rep.Reason = fmt.Sprintf("session check: %v", err)
		return rep, nil
	}
	if name != "" {
		rep.Cookie = name
	}
	if !authed {
		rep.Reason = "session check: the fresh session cookie reads authenticated:false"
		return rep, nil
	}
	if line := matchPattern(logs()); line != "" {
		rep.Reason = "log shows a migration error: " + line
		return rep, nil
	}
	// 5. The ledger shows the migrations ran.
	var after int
	err = run.files(func() (err error) { after, err = readLedgerMax(ctx, liveDB(base)); return err })
	if err != nil {
		rep.Reason = fmt.Sprintf("ledger: %v", err)
		return rep, nil
	}
	rep.Schema = after
	if after == 0 || after < before {
		rep.Reason = fmt.Sprintf("ledger: schema %d after the run, %d in the seed", after, before)
		return rep, nil
	}
	rep.Passed = true
	return rep, nil
}

// sessionCheck asks GET /api/auth/session about cookies: authenticated, and
// the cookie name the instance reports.
func sessionCheck(ctx context.Context, client *http.Client, baseURL string, cookies []*http.Cookie) (bool, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/api/auth/session", nil)
	if err != nil {
		return false, "", err
	}
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return false, "", fmt.Errorf("answered %d", resp.StatusCode)
	}
	var s struct {
		Authenticated bool `json:"authenticated"`
		Auth          struct {
			SessionCookieName string `json:"sessionCookieName"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return false, "", fmt.Errorf("unparseable body: %w", err)
	}
	return s.Authenticated, s.Auth.SessionCookieName, nil
}

// matchPattern returns the first log line holding a migration-error pattern.
// Every line is looked at, however long: logs is already bounded (readLogs,
// maxServeOutput), and a scanner's line limit would end the scan at the
// first long line, before an error logged after it.
func matchPattern(logs string) string {
	pats := MigrationErrorPatterns()
	for i := range pats {
		pats[i] = strings.ToLower(pats[i])
	}
	for line := range strings.Lines(logs) {
		low := strings.ToLower(line)
		if namedMigrationFailed.MatchString(low) {
			return strings.TrimSpace(line)
		}
		for _, p := range pats {
			if strings.Contains(low, p) {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// readLogs reads the serve's logs (readLogs) with r's rights: the serve
// owns the tree and can link its log directory anywhere.
func (r *runner) readLogs(base string) string {
	var logs string
	_ = r.files(func() error { logs = readLogs(base); return nil })
	return logs
}

// Bounds on what readLogs reads: the serve (or its user) shapes the
// directories, with as many entries, links and sparse files as it likes.
const (
	maxLogEntries = 1024               // entries of a directory looked at
	maxLogBytes   = 8 * maxServeOutput // bytes read in all
)

// readLogs concatenates the server's own log files: those directly in
// <base>/userdata/logs (where t3 keeps server.log) and, for older layouts,
// <base>/logs. Subdirectories (provider/, terminals/) hold what agents and
// shells printed, which may quote any error text, so they are not read.
// A file of maxServeOutput bytes or more is skipped, its size taken from
// the open file; each is opened without blocking (a FIFO swapped in after
// the listing) and must still be a regular file; a directory's first
// maxLogEntries entries are looked at, and maxLogBytes read in all.
func readLogs(base string) string {
	var buf bytes.Buffer
	for _, dir := range []string{filepath.Join(base, "userdata", "logs"), filepath.Join(base, "logs")} {
		for _, name := range logNames(dir) {
			if buf.Len() >= maxLogBytes {
				return buf.String()
			}
			appendLog(&buf, filepath.Join(dir, name))
		}
	}
	return buf.String()
}

// logNames returns, sorted, the names of the regular files among the first
// maxLogEntries entries of dir.
func logNames(dir string) []string {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	var names []string
	for seen := 0; seen < maxLogEntries; {
		entries, err := d.ReadDir(min(256, maxLogEntries-seen))
		for _, e := range entries {
			if e.Type().IsRegular() {
				names = append(names, e.Name())
			}
		}
		seen += len(entries)
		if err != nil || len(entries) == 0 {
			break
		}
	}
	slices.Sort(names)
	return names
}

// appendLog appends the file at path and a newline to buf when it is a
// regular file under maxServeOutput bytes, and buf has room for it.
func appendLog(buf *bytes.Buffer, path string) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() >= maxServeOutput || int(fi.Size()) > maxLogBytes-buf.Len() {
		return
	}
	start := buf.Len()
	// It may have grown since: read no more than the bound allows.
	n, err := buf.ReadFrom(io.LimitReader(f, int64(min(maxServeOutput, maxLogBytes-start))))
	if err != nil || n >= maxServeOutput || buf.Len() >= maxLogBytes {
		buf.Truncate(start)
		return
	}
	buf.WriteByte('\n')
}

// liveDB is the database the build left live: statev2.sqlite when it made
// one, else state.sqlite.
func liveDB(base string) string {
	v2 := filepath.Join(base, "userdata", "statev2.sqlite")
	if _, err := os.Stat(v2); err == nil {
		return v2
	}
	return filepath.Join(base, "userdata", "state.sqlite")
}

// readLedgerMax reads the schema level of the database at path, as
// statebackup records it for a snapshot (0 with no ledger), until ctx ends
// (the database is the user's, or the build's).
func readLedgerMax(ctx context.Context, path string) (int, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, err
	}
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetInterrupt(ctx.Done())
	conn.SetBusyTimeout(5 * time.Second)
	return statebackup.SchemaLevel(conn)
}
