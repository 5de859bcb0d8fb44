//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/idlegate"
	"github.com/t3fleet/t3fleet/statebackup"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	dir      string
	sizeMB   int
	rounds   int
	rate     int
	threads  int
	verdicts int
	sqlite3  string
	skipSnap bool
	skipIdle bool
	child    string // -writer-child: run as the writer process on this DB
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c config
	fs := flag.NewFlagSet("backupbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.dir, "dir", "", "work directory (default: a new temp dir, removed at the end)")
	fs.IntVar(&c.sizeMB, "size-mb", 200, "size of the live database")
	fs.IntVar(&c.rounds, "rounds", 3, "snapshot rounds (each: CLI, bare VACUUM INTO, Store.Backup, in rotating order)")
	fs.IntVar(&c.rate, "rate", 840, "writer inserts per second")
	fs.IntVar(&c.threads, "threads", 100_000, "thread rows of the idle-verdict database")
	fs.IntVar(&c.verdicts, "verdicts", 30, "idle verdicts measured")
	fs.StringVar(&c.sqlite3, "sqlite3", "sqlite3", "the sqlite3 CLI (the baseline)")
	fs.BoolVar(&c.skipSnap, "skip-snapshot", false, "skip the snapshot benchmark")
	fs.BoolVar(&c.skipIdle, "skip-idle", false, "skip the idle-verdict benchmark")
	fs.StringVar(&c.child, "writer-child", "", "internal: be the writer process inserting into this database")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if c.child != "" {
		if err := writerChild(ctx, c.child, c.rate, os.Stdin, stdout); err != nil {
			fmt.Fprintln(stderr, "backupbench writer:", err)
			return 1
		}
		return 0
	}
	cli, err := exec.LookPath(c.sqlite3)
	if err != nil {
		fmt.Fprintf(stderr, "backupbench: the sqlite3 CLI is the baseline and is missing: %v\n", err)
		return 1
	}
	c.sqlite3 = cli
	if c.dir == "" {
		d, err := os.MkdirTemp("", "backupbench-")
		if err != nil {
			fmt.Fprintln(stderr, "backupbench:", err)
			return 1
		}
		defer os.RemoveAll(d)
		c.dir = d
	}
	fmt.Fprintf(stdout, "backupbench: %s\n", loadAvg())
	if !c.skipSnap {
		if err := benchSnapshot(ctx, c, stdout); err != nil {
			fmt.Fprintln(stderr, "backupbench: snapshot:", err)
			return 1
		}
	}
	if !c.skipIdle {
		if err := benchIdle(ctx, c, stdout); err != nil {
			fmt.Fprintln(stderr, "backupbench: idle:", err)
			return 1
		}
	}
	return 0
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return fmt.Sprintf("load average %s %s %s", f[0], f[1], f[2])
}

type sample struct {
	took    time.Duration
	inserts []time.Duration // the writer's insert latencies meanwhile
}

func benchSnapshot(ctx context.Context, c config, stdout io.Writer) error {
	base := filepath.Join(c.dir, "home", "bench", ".t3")
	rowBytes := 4096
	rows := c.sizeMB << 20 / (rowBytes + 200)
	fmt.Fprintf(stdout, "seeding a %d MB database (%d rows)...\n", c.sizeMB, rows)
	if err := t3test.SeedState(base, t3test.EraD, t3test.SeedOptions{Threads: 50, BulkRows: rows, BulkRowBytes: rowBytes}); err != nil {
		return err
	}
	target := statebackup.Target{User: "bench", UserdataDir: t3test.UserDataDir(base)}
	live := t3test.StateDB(base)
	fi, err := os.Stat(live)
	if err != nil {
		return err
	}
	size := fi.Size()
	w, err := startWriter(ctx, live, c.rate)
	if err != nil {
		return err
	}
	defer w.Stop()
	out := filepath.Join(c.dir, "out")
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	st := statebackup.NewStore(filepath.Join(c.dir, "backups"), statebackup.Options{Method: statebackup.MethodBackupAPI})
	stv := statebackup.NewStore(filepath.Join(c.dir, "backups"), statebackup.Options{Method: statebackup.MethodVacuumInto})

	methods := []struct {
		name string
		fn   func(i int) error
	}{
		{"sqlite3 CLI VACUUM INTO", func(i int) error {
			dst := filepath.Join(out, fmt.Sprintf("cli-%d.sqlite", i))
			cmd := exec.CommandContext(ctx, c.sqlite3, live, "VACUUM INTO '"+dst+"'")
			if b, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, b)
			}
			return os.Remove(dst)
		}},
		{"VACUUM INTO (syncs itself)", func(i int) error {
			dst := filepath.Join(out, fmt.Sprintf("zz-%d.sqlite", i))
			conn, err := sqlite.OpenConn(live, sqlite.OpenReadOnly)
			if err != nil {
				return err
			}
			err = sqlitex.ExecuteTransient(conn, "VACUUM INTO ?", &sqlitex.ExecOptions{Args: []any{dst}})
			conn.Close()
			if err != nil {
				return err
			}
			// VACUUM INTO already synced the copy (synchronous=FULL): one
			// large flush, what Store.Backup avoids; this fsync is a no-op.
			f, err := os.OpenFile(dst, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			err = f.Sync()
			f.Close()
			if err != nil {
				return err
			}
			return os.Remove(dst)
		}},
		{"VACUUM INTO sync=OFF+chunks", func(i int) error {
			dst := filepath.Join(out, fmt.Sprintf("zc-%d.sqlite", i))
			conn, err := sqlite.OpenConn(live, sqlite.OpenReadOnly)
			if err != nil {
				return err
			}
			err = sqlitex.ExecuteTransient(conn, "PRAGMA synchronous=OFF", nil)
			if err == nil {
				err = sqlitex.ExecuteTransient(conn, "VACUUM INTO ?", &sqlitex.ExecOptions{Args: []any{dst}})
			}
			conn.Close()
			if err != nil {
				return err
			}
			if err := chunkedFlush(dst); err != nil {
				return err
			}
			return os.Remove(dst)
		}},
		{"Store.Backup (vacuum-into)", func(i int) error {
			snap, err := stv.Backup(ctx, target, statebackup.LabelManual)
			if err != nil {
				return err
			}
			os.Remove(snap.Path + statebackup.MetadataSuffix)
			return os.Remove(snap.Path)
		}},
		{"Store.Backup (backup-api)", func(i int) error {
			snap, err := st.Backup(ctx, target, statebackup.LabelManual)
			if err != nil {
				return err
			}
			os.Remove(snap.Path + statebackup.MetadataSuffix)
			return os.Remove(snap.Path)
		}},
	}
	results := make([][]sample, len(methods))
	var idle []time.Duration // the writer's insert latencies, no snapshot running
	time.Sleep(time.Second)  // let the writer settle
	for r := 0; r < c.rounds; r++ {
		// A window of the same length with no snapshot: the writer's own
		// stalls (its checkpoints, the disk) for comparison.
		from := time.Now()
		time.Sleep(2 * time.Second)
		ins, err := w.window(from, time.Now())
		if err != nil {
			return fmt.Errorf("writer: %w", err)
		}
		idle = append(idle, ins...)
		for k := range methods {
			j := (k + r) % len(methods)
			start := time.Now()
			if err := methods[j].fn(r); err != nil {
				return fmt.Errorf("%s: %w", methods[j].name, err)
			}
			end := time.Now()
			ins, err := w.window(start, end)
			if err != nil {
				return fmt.Errorf("writer: %w", err)
			}
			results[j] = append(results[j], sample{end.Sub(start), ins})
		}
	}
	fmt.Fprintf(stdout, "\nsnapshot of a %.0f MB live WAL database, writer at %d inserts/s, %d rounds (median):\n",
		float64(size)/(1<<20), c.rate, c.rounds)
	base0 := median(results[0], func(s sample) time.Duration { return s.took })
	for j, m := range methods {
		took := median(results[j], func(s sample) time.Duration { return s.took })
		fmt.Fprintf(stdout, "  %-28s %7.1f MB/s  ratio to CLI %.2fx\n", m.name,
			float64(size)/(1<<20)/took.Seconds(), base0.Seconds()/took.Seconds())
	}
	// The writer's stalls: all rounds pooled, next to the same writer with
	// no snapshot running, so what the snapshot adds can be told from the
	// disk's own flushes.
	none := latencies(idle)
	fmt.Fprintf(stdout, "\nwriter's insert latency, %d rounds pooled (p99 and max; x = ratio to no snapshot):\n", c.rounds)
	fmt.Fprintf(stdout, "  %-28s p99 %7s  max %7s  (%d inserts)\n", "no snapshot running",
		none.p99.Round(100*time.Microsecond), none.max.Round(time.Millisecond), none.n)
	for j, m := range methods {
		var all []time.Duration
		for _, s := range results[j] {
			all = append(all, s.inserts...)
		}
		l := latencies(all)
		fmt.Fprintf(stdout, "  %-28s p99 %7s %5.2fx  max %7s %5.2fx  (%d inserts)\n", m.name,
			l.p99.Round(100*time.Microsecond), ratio(l.p99, none.p99),
			l.max.Round(time.Millisecond), ratio(l.max, none.max), l.n)
	}
	return nil
}

type latency struct {
	n        int
	p99, max time.Duration
}

func latencies(v []time.Duration) latency {
	if len(v) == 0 {
		return latency{}
	}
	v = append([]time.Duration(nil), v...)
	sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
	return latency{n: len(v), p99: v[len(v)*99/100], max: v[len(v)-1]}
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return a.Seconds() / b.Seconds()
}

func median(s []sample, f func(sample) time.Duration) time.Duration {
	v := make([]time.Duration, len(s))
	for i := range s {
		v[i] = f(s[i])
	}
	sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
	return v[len(v)/2]
}

func benchIdle(ctx context.Context, c config, stdout io.Writer) error {
	base := filepath.Join(c.dir, "home", "idle", ".t3")
	fmt.Fprintf(stdout, "\nseeding %d threads for the idle verdict...\n", c.threads)
	now := time.Now().Add(-time.Hour)
	if err := t3test.SeedState(base, t3test.EraD, t3test.SeedOptions{Threads: c.threads, ActiveTurns: 2, Now: now}); err != nil {
		return err
	}
	o := idlegate.NewDBOracle(idlegate.DBOptions{})
	in := t3fleet.Instance{User: "idle", OSUser: "idle", StateDir: base}
	var ours, cli, cliScan []time.Duration
	for i := 0; i < c.verdicts; i++ {
		start := time.Now()
		v, err := o.Idle(ctx, in)
		ours = append(ours, time.Since(start))
		if err != nil {
			return err
		}
		if v.ActiveTurns != 2 {
			return errors.New("verdict missed the active turns: " + v.Reason)
		}
		// The CLI runs the oracle's scan; .timer reports the scan alone,
		// the wall clock adds process start and schema load.
		start = time.Now()
		cmd := exec.CommandContext(ctx, c.sqlite3, "-readonly", t3test.StateDB(base))
		cmd.Stdin = strings.NewReader(".timer on\n" + idleScanSQL + ";\n")
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, b)
		}
		cli = append(cli, time.Since(start))
		d, err := cliRunTime(string(b))
		if err != nil {
			return err
		}
		cliScan = append(cliScan, d)
	}
	sortD := func(v []time.Duration) { sort.Slice(v, func(a, b int) bool { return v[a] < v[b] }) }
	sortD(ours)
	sortD(cli)
	sortD(cliScan)
	med := func(v []time.Duration) time.Duration { return v[len(v)/2] }
	fmt.Fprintf(stdout, "idle verdict on %d threads, %d runs: median %s, best %s (target < 20ms)\n",
		c.threads, c.verdicts, med(ours).Round(100*time.Microsecond), ours[0].Round(100*time.Microsecond))
	fmt.Fprintf(stdout, "  sqlite3 CLI, the same scan: median %s alone (.timer, 1 ms steps), %s with process start; ratio ours/CLI %.2fx (scan alone), %.2fx (with start)\n",
		med(cliScan).Round(100*time.Microsecond), med(cli).Round(100*time.Microsecond),
		med(ours).Seconds()/med(cliScan).Seconds(), med(ours).Seconds()/med(cli).Seconds())
	return nil
}

// idleScanSQL is the scan idlegate.DBOracle runs on a state.sqlite with
// projection_turns, for the CLI to run the same.
const idleScanSQL = `SELECT count(*), count(s.active_turn_id), max(s.updated_at),
	min(CASE WHEN s.active_turn_id IS NOT NULL THEN coalesce((SELECT t.started_at FROM projection_turns t
		WHERE t.thread_id = s.thread_id AND t.turn_id = s.active_turn_id), s.updated_at) END)
	FROM projection_thread_sessions s`

// cliRunTime reads the "Run Time: real 0.012 ..." line .timer prints.
func cliRunTime(out string) (time.Duration, error) {
	for _, l := range strings.Split(out, "\n") {
		var real float64
		if _, err := fmt.Sscanf(l, "Run Time: real %g", &real); err == nil {
			return time.Duration(real * float64(time.Second)), nil
		}
	}
	return 0, fmt.Errorf("sqlite3 .timer printed no run time: %q", out)
}

// chunkedFlush writes a file back 8 MB at a time before its fsync, the way
// statebackup does (after a VACUUM INTO with synchronous=OFF), to compare
// with VACUUM INTO's own single flush in the same run.
func chunkedFlush(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	const chunk = 8 << 20
	for off := int64(0); off < fi.Size(); off += chunk {
		if err := syscall.SyncFileRange(int(f.Fd()), off, chunk, 1|2|4); err != nil {
			break
		}
	}
	return f.Sync()
}
