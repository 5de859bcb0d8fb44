package idlegate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/statebackup"
)

// Defaults for the zero values of DBOptions.
const (
	DefaultQuietThreshold = 900 * time.Second
	DefaultBusyCeiling    = 6 * time.Hour
	DefaultBusyTimeout    = 2 * time.Second
	DefaultClockSkew      = 2 * time.Second
)

// EndRunStatuses are the statuses of a statev2 run that has ended; any
// other counts as a run in flight. A copy.
func EndRunStatuses() []string { return slices.Clone(endRunStatuses) }

// Sentinels for the ways the DB oracle fails closed. Each comes with a
// not-idle Verdict whose Reason says the same in words.
var (
	// ErrNoState: no state directory, database or table to judge from.
	ErrNoState = errors.New("no state to judge idleness from")
	// ErrBadTimestamp: an updated_at or started_at that does not parse.
	ErrBadTimestamp = errors.New("unparseable timestamp")
	// ErrClockSkew: the last activity lies in the future.
	ErrClockSkew = errors.New("timestamp in the future")
)

// End states of a statev2 run: those of t3's OrchestrationV2RunStatus
// (completed, interrupted, failed, cancelled, rolled_back) and spellings a
// build might use for the same. The gate fails closed: any other status
// counts as active (preparing, queued, starting, running, waiting, and any
// a later build adds), so a status it does not know can only defer a user,
// never restart one mid-run. A queued run counts too: a restart holds the
// queue until its user resumes it.
var endRunStatuses = []string{"completed", "failed", "interrupted", "cancelled", "rolled_back", "canceled", "aborted", "errored", "error", "succeeded", "expired", "timed_out"}

// DBOptions tunes a DBOracle. The zero value works.
type DBOptions struct {
	// QuietThreshold is how long the database must have seen no activity.
	// Zero: DefaultQuietThreshold.
	QuietThreshold time.Duration
	// BusyCeiling: a turn in flight longer than this is reported Suspicious.
	// Zero: DefaultBusyCeiling.
	BusyCeiling time.Duration
	// BusyTimeout bounds waiting on a locked database. Zero:
	// DefaultBusyTimeout.
	BusyTimeout time.Duration
	// ClockSkew is how far in the future a timestamp may be before the
	// verdict fails closed. Zero: DefaultClockSkew.
	ClockSkew time.Duration
	// Now returns the current time. Nil: time.Now.
	Now func() time.Time
}

// DBOracle judges idleness from the instance's live state database, opened
// read-only (mode=ro: it never takes a write lock): no turn in flight
// (projection_thread_sessions.active_turn_id; statev2: runs in an active
// status) and no activity for QuietThreshold (the newest updated_at; in
// statev2 the newest timestamp its runs carry).
type DBOracle struct {
	opts DBOptions
}

var _ IdleOracle = (*DBOracle)(nil)

// NewDBOracle returns a DBOracle with opts.
func NewDBOracle(opts DBOptions) *DBOracle {
	if opts.QuietThreshold <= 0 {
		opts.QuietThreshold = DefaultQuietThreshold
	}
	if opts.BusyCeiling <= 0 {
		opts.BusyCeiling = DefaultBusyCeiling
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	if opts.ClockSkew <= 0 {
		opts.ClockSkew = DefaultClockSkew
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &DBOracle{opts: opts}
}

// activity is what one table says.
type activity struct {
	rows, active int
	last, oldest string // newest updated_at; oldest start of an active turn
}

// Idle reads in.StateDir/userdata's live database. Any doubt is a not-idle
// verdict with the reason, and an error.
func (o *DBOracle) Idle(ctx context.Context, in t3fleet.Instance) (Verdict, error) {
	v, err := o.idle(ctx, in)
	if err != nil {
		v = Verdict{Reason: "not idle: " + err.Error(), ActiveTurns: v.ActiveTurns, Suspicious: v.Suspicious}
		return v, fmt.Errorf("idle %s: %w", in.OSUser, err)
	}
	return v, nil
}

func (o *DBOracle) idle(ctx context.Context, in t3fleet.Instance) (Verdict, error) {
	if in.StateDir == "" {
		return Verdict{}, fmt.Errorf("%w: instance has no state directory on this host", ErrNoState)
	}
	userdata := filepath.Join(in.StateDir, "userdata")
	path, owner, err := statebackup.LiveDBOwner(userdata)
	if err != nil {
		return Verdict{}, fmt.Errorf("%w: %w", ErrNoState, err)
	}
	// Everything below opens or stats by path under the user's tree, which
	// the user can swap for a symlink into another user's at any moment:
	// it runs with the owner's filesystem rights, so a swap reaches nothing
	// the owner could not read anyway (and SQLite creates any -shm as the
	// owner: nothing is left for root to chown back).
	var acts []activity
	err = statebackup.AsOwner(owner, func() error {
		paths := []string{path}
		// state.sqlite chosen over a statev2.sqlite beside it, by file
		// times alone: a build back on state.sqlite, or the frozen copy
		// touched or a clock stepped back under a live statev2. Fail
		// closed: its runs count.
		if v2 := filepath.Join(userdata, statebackup.StateV2DB); filepath.Base(path) == statebackup.StateDB {
			if _, err := os.Lstat(v2); err == nil {
				paths = append(paths, v2)
			}
		}
		for _, p := range paths {
			a, err := o.read(ctx, p)
			if err != nil {
				return err
			}
			acts = append(acts, a...)
		}
		return nil
	})
	if err != nil {
		return Verdict{}, err
	}
	now := o.opts.Now()
	var v Verdict
	var last, oldest time.Time
	rows := 0
	for _, a := range acts {
		rows += a.rows
		v.ActiveTurns = max(v.ActiveTurns, a.active)
		if a.last != "" {
			t, err := parseTime(a.last)
			if err != nil {
				return v, err
			}
			if t.After(last) {
				last = t
			}
		}
		if a.oldest != "" {
			t, err := parseTime(a.oldest)
			if err != nil {
				return v, err
			}
			if oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
		}
	}
	if !last.IsZero() && last.Sub(now) > o.opts.ClockSkew {
		return v, fmt.Errorf("%w: last activity %s is %s ahead of now", ErrClockSkew,
			last.Format(time.RFC3339), last.Sub(now).Round(time.Second))
	}
	if v.ActiveTurns > 0 {
		v.Reason = fmt.Sprintf("%d turn(s) in flight", v.ActiveTurns)
		if !oldest.IsZero() && now.Sub(oldest) > o.opts.BusyCeiling {
			v.Suspicious = true
			v.Reason += fmt.Sprintf("; one started %s ago, past the busy ceiling %s (suspicious: stuck turn?)",
				now.Sub(oldest).Round(time.Second), o.opts.BusyCeiling)
		}
		if !last.IsZero() {
			v.QuietFor = max(0, now.Sub(last))
		}
		return v, nil
	}
	if rows == 0 || last.IsZero() {
		v.Idle = true
		v.Reason = "idle: no thread sessions"
		return v, nil
	}
	v.QuietFor = max(0, now.Sub(last))
	if v.QuietFor < o.opts.QuietThreshold {
		v.Reason = fmt.Sprintf("last activity %s ago, under the quiet threshold %s",
			v.QuietFor.Round(time.Second), o.opts.QuietThreshold)
		return v, nil
	}
	v.Idle = true
	v.Reason = fmt.Sprintf("idle: quiet for %s", v.QuietFor.Round(time.Second))
	return v, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q", ErrBadTimestamp, s)
	}
	return t, nil
}

// read opens path read-only and collects what its activity tables say.
// The caller runs it with the database owner's rights (AsOwner).
func (o *DBOracle) read(ctx context.Context, path string) (acts []activity, err error) {
	u := url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro"}
	c, err := sqlite.OpenConn(u.String(), sqlite.OpenReadOnly|sqlite.OpenURI|openNoFollow)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer c.Close()
	c.SetBusyTimeout(o.opts.BusyTimeout)
	c.SetInterrupt(ctx.Done())
	// The scan below touches every session row once: a small page cache is
	// recycled instead of growing to the table's size and being freed page by
	// page on close (measured: close went from ~8 ms to < 1 ms at 100k rows).
	if err := sqlitex.ExecuteTransient(c, "PRAGMA cache_size=-256", nil); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}

	tables := map[string]bool{}
	err = sqlitex.ExecuteTransient(c, `SELECT name FROM sqlite_master WHERE type='table' AND name IN
		('projection_thread_sessions','projection_turns','orchestration_v2_projection_runs')`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { tables[s.ColumnText(0)] = true; return nil }})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	isV2 := filepath.Base(path) == statebackup.StateV2DB
	switch {
	case isV2 && !tables["orchestration_v2_projection_runs"]:
		return nil, fmt.Errorf("%w: %s has no orchestration_v2_projection_runs table", ErrNoState, path)
	case !isV2 && !tables["projection_thread_sessions"]:
		return nil, fmt.Errorf("%w: %s has no projection_thread_sessions table", ErrNoState, path)
	}
	// One read transaction, so both tables are read at one point in time.
	if err := sqlitex.ExecuteTransient(c, "BEGIN", nil); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer sqlitex.ExecuteTransient(c, "ROLLBACK", nil)

	// statev2 is a one-time copy of state.sqlite (T3-CONTRACT.md §3): its
	// thread sessions stopped at the move, and a turn left running in that
	// copy would hold the user back for good. Its runs say what is active.
	if tables["projection_thread_sessions"] && !isV2 {
		start := "s.updated_at"
		if tables["projection_turns"] {
			start = `coalesce((SELECT t.started_at FROM projection_turns t
				WHERE t.thread_id = s.thread_id AND t.turn_id = s.active_turn_id), s.updated_at)`
		}
		a, odd, err := scan(c, `SELECT count(*), count(s.active_turn_id), max(s.updated_at),
			min(CASE WHEN s.active_turn_id IS NOT NULL THEN `+start+` END),
			count(s.updated_at) - count(CASE WHEN `+t3Form("s.updated_at")+` THEN 1 END)
			FROM projection_thread_sessions s`)
		if err == nil && odd > 0 {
			// Not all in t3's form: the greatest string need not be the
			// newest time, so compare them as times.
			a.last, err = julianMax(c, "projection_thread_sessions", "updated_at")
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if a.rows > 0 && a.last == "" { // no time to go by: the file's last write
			a.last = fileModTime(path).UTC().Format(time.RFC3339Nano)
		}
		acts = append(acts, a)
	}
	if tables["orchestration_v2_projection_runs"] {
		a, err := readRuns(c, path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		acts = append(acts, a)
	}
	return acts, nil
}

// The timestamps a statev2 run may carry, newest activity first among
// them; which ones a build writes is inferred (t3 has been seen writing
// requested_at and completed_at), so the query takes what the table has.
var (
	runStamps = []string{"updated_at", "completed_at", "requested_at", "started_at"}
	runStarts = []string{"started_at", "requested_at", "updated_at"}
)

// readRuns reads orchestration_v2_projection_runs in one pass: how many
// runs, how many in an active status, the newest time any of its timestamp
// columns holds, and the oldest start of an active run. Which columns a
// build writes, and how, is inferred, so times are compared as times: in
// t3's own form (24 characters, UTC, "Z") a column's greatest string is its
// newest time, a cheap scan; any other value sends the read to SQLite's
// julianday (ISO 8601 with Z or an offset, or SQLite's own format), and a
// value that is not a time fails the verdict closed. Runs with no time at
// all to go by are judged by the database file's last write.
func readRuns(c *sqlite.Conn, path string) (activity, error) {
	cols := map[string]bool{}
	err := sqlitex.ExecuteTransient(c, `SELECT name FROM pragma_table_info('orchestration_v2_projection_runs')`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { cols[s.ColumnText(0)] = true; return nil }})
	if err != nil {
		return activity{}, err
	}
	if !cols["status"] {
		return activity{}, fmt.Errorf("%w: orchestration_v2_projection_runs has no status column", ErrNoState)
	}
	var stamps, starts []string
	for _, c := range runStamps {
		if cols[c] {
			stamps = append(stamps, c)
		}
	}
	for _, c := range runStarts {
		if cols[c] {
			starts = append(starts, c)
		}
	}
	a, last, ok, err := scanRuns(c, stamps, starts, false)
	if err == nil && !ok {
		a, last, _, err = scanRuns(c, stamps, starts, true)
	}
	if err != nil {
		return a, err
	}
	switch {
	case !last.IsZero():
		a.last = last.Format(time.RFC3339Nano)
	case a.rows > 0:
		a.last = fileModTime(path).UTC().Format(time.RFC3339Nano)
	}
	return a, nil
}

// scanRuns is readRuns' one pass: with julian false, comparing t3's
// canonical strings (ok is false when a value is in any other form); with
// julian true, comparing julianday values (an error when one is no time).
func scanRuns(c *sqlite.Conn, stamps, starts []string, julian bool) (a activity, last time.Time, ok bool, err error) {
	// A CASE, not NOT IN: most rows are 'completed', the first WHEN, where
	// an IN list costs a b-tree lookup per row (75 ms against 25 on 100k
	// runs, twice per row).
	in := "CASE status WHEN '" + strings.Join(endRunStatuses, "' THEN 0 WHEN '") + "' THEN 0 ELSE 1 END"
	conv := func(e string) string { return e }
	if julian {
		conv = func(e string) string { return "julianday(" + e + ")" }
	}
	var sel []string
	for _, c := range stamps {
		if julian { // the newest, and how many values are no time
			sel = append(sel, "max("+conv(c)+")", "count("+c+") - count("+conv(c)+")")
		} else { // the newest, and how many values are not in t3's form
			sel = append(sel, "max("+c+")", "count("+c+") - count(CASE WHEN "+t3Form(c)+" THEN 1 END)")
		}
	}
	oldest := "NULL"
	switch len(starts) {
	case 0:
	case 1:
		oldest = "min(CASE WHEN " + in + " = 1 THEN " + conv(starts[0]) + " END)"
	default:
		oldest = "min(CASE WHEN " + in + " = 1 THEN " + conv("coalesce("+strings.Join(starts, ", ")+")") + " END)"
	}
	q := `SELECT count(*), coalesce(sum(` + in + `), 0), ` + oldest
	if len(sel) > 0 {
		q += ", " + strings.Join(sel, ", ")
	}
	ok = true
	err = sqlitex.ExecuteTransient(c, q+` FROM orchestration_v2_projection_runs`, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		a = activity{rows: s.ColumnInt(0), active: s.ColumnInt(1)}
		at := func(i int) (time.Time, bool) {
			switch {
			case s.ColumnType(i) == sqlite.TypeNull:
				return time.Time{}, false
			case julian:
				return julianTime(s.ColumnFloat(i)), true
			}
			t, err := time.Parse(time.RFC3339Nano, s.ColumnText(i))
			if err != nil {
				ok = false
			}
			return t, err == nil
		}
		if t, has := at(2); has {
			a.oldest = t.Format(time.RFC3339Nano)
		}
		for i := 3; i < 3+len(sel); i += 2 {
			if n := s.ColumnInt(i + 1); n > 0 {
				if julian {
					return fmt.Errorf("%w: %d value(s) of orchestration_v2_projection_runs are not times", ErrBadTimestamp, n)
				}
				ok = false
			}
			if t, has := at(i); has && t.After(last) {
				last = t
			}
		}
		return nil
	}})
	return a, last, ok, err
}

// julianTime converts a Julian day number (SQLite's julianday) to a UTC
// time, to the millisecond.
func julianTime(jd float64) time.Time {
	const unixEpochJD = 2440587.5
	ms := math.Round((jd - unixEpochJD) * 86400e3)
	return time.UnixMilli(int64(ms)).UTC()
}

// fileModTime is the newest modification time of a database and its WAL:
// when it was last written.
func fileModTime(path string) time.Time {
	var t time.Time
	for _, p := range []string{path, path + "-wal"} {
		if st, err := os.Stat(p); err == nil && st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t
}

// scan reads the thread sessions' activity, and how many updated_at
// values are not in t3's form.
func scan(c *sqlite.Conn, q string) (a activity, odd int, err error) {
	err = sqlitex.ExecuteTransient(c, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		a = activity{rows: s.ColumnInt(0), active: s.ColumnInt(1), last: s.ColumnText(2), oldest: s.ColumnText(3)}
		odd = s.ColumnInt(4)
		return nil
	}})
	return a, odd, err
}

// t3Form is an SQL test that column expression e is in t3's own form
// (2026-09-06T12:00:00.000Z), where the greatest string is the newest time.
// SQLite's "2026-09-06 12:00:00.000Z" has the length and the Z too, but
// sorts below every t3 stamp of the same day: the T is checked as well.
// One GLOB per row (measured cheaper than length and two substr).
func t3Form(e string) string {
	return e + " GLOB '??????????T????????????Z'"
}

// julianMax is the newest time in table's column col compared as times
// (SQLite's julianday), in t3's form; "" when the column holds none. A
// value that is no time fails closed.
func julianMax(c *sqlite.Conn, table, col string) (string, error) {
	var last string
	err := sqlitex.ExecuteTransient(c, `SELECT max(julianday(`+col+`)), count(`+col+`) - count(julianday(`+col+`)) FROM `+table,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			if n := s.ColumnInt(1); n > 0 {
				return fmt.Errorf("%w: %d value(s) of %s.%s are not times", ErrBadTimestamp, n, table, col)
			}
			if s.ColumnType(0) != sqlite.TypeNull {
				last = julianTime(s.ColumnFloat(0)).Format(time.RFC3339Nano)
			}
			return nil
		}})
	return last, err
}

// openNoFollow is SQLITE_OPEN_NOFOLLOW: the database path may not be a
// symlink.
const openNoFollow sqlite.OpenFlags = 0x01000000
