//go:build linux

// Command backupbench measures statebackup and idlegate on this machine and
// prints ratios, never bare absolutes alone (the machines running it are
// shared, so only a comparison inside one run means something):
//
//   - snapshot throughput of statebackup.Store.Backup with each copy method
//     (copy, chunked write-back and fsync, quick_check, sha256, rename) and
//     of a bare
//     zombiezen VACUUM INTO, synced by SQLite in one flush or written back by
//     us in 8 MB chunks, each
//     as a ratio to the sqlite3 CLI's VACUUM INTO of the same live WAL
//     database, while a writer keeps inserting (target >= 0.8x);
//   - the writer's longest insert while each snapshot runs, next to its
//     longest insert with no snapshot running (target < 100 ms);
//   - one idle verdict (idlegate.DBOracle) on a database with 100k threads
//     (target < 20 ms), next to the sqlite3 CLI running the same scan.
//
// Usage:
//
//	go run ./examples/backupbench [-size-mb 200] [-rounds 3] [-rate 840] [-threads 100000]
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
	took  time.Duration
	stall time.Duration
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
	idle := make([]time.Duration, 0, c.rounds)
	time.Sleep(time.Second) // let the writer settle
	for r := 0; r < c.rounds; r++ {
		// A window of the same length with no snapshot: the writer's own
		// stalls (its checkpoints, the disk) for comparison.
		from := time.Now()
		time.Sleep(2 * time.Second)
		m, err := w.longest(from, time.Now())
		if err != nil {
			return fmt.Errorf("writer: %w", err)
		}
		idle = append(idle, m)
		for k := range methods {
			j := (k + r) % len(methods)
			start := time.Now()
			if err := methods[j].fn(r); err != nil {
				return fmt.Errorf("%s: %w", methods[j].name, err)
			}
			end := time.Now()
			stall, err := w.longest(start, end)
			if err != nil {
				return fmt.Errorf("writer: %w", err)
			}
			results[j] = append(results[j], sample{end.Sub(start), stall})
		}
	}
	fmt.Fprintf(stdout, "\nsnapshot of a %.0f MB live WAL database, writer at %d inserts/s, %d rounds (median):\n",
		float64(size)/(1<<20), c.rate, c.rounds)
	base0 := median(results[0], func(s sample) time.Duration { return s.took })
	for j, m := range methods {
		took := median(results[j], func(s sample) time.Duration { return s.took })
		stall := maxOf(results[j], func(s sample) time.Duration { return s.stall })
		fmt.Fprintf(stdout, "  %-28s %7.1f MB/s  ratio to CLI %.2fx  writer's longest insert %s\n", m.name,
			float64(size)/(1<<20)/took.Seconds(), base0.Seconds()/took.Seconds(), stall.Round(time.Millisecond))
	}
	sort.Slice(idle, func(a, b int) bool { return idle[a] < idle[b] })
	fmt.Fprintf(stdout, "  %-28s %s\n", "no snapshot running", "writer's longest insert "+idle[len(idle)-1].Round(time.Millisecond).String())
	return nil
}

func median(s []sample, f func(sample) time.Duration) time.Duration {
	v := make([]time.Duration, len(s))
	for i := range s {
		v[i] = f(s[i])
	}
	sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
	return v[len(v)/2]
}

func maxOf(s []sample, f func(sample) time.Duration) time.Duration {
	var m time.Duration
	for _, x := range s {
		m = max(m, f(x))
	}
	return m
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
	var ours, cli []time.Duration
	q := `SELECT count(active_turn_id), max(updated_at) FROM projection_thread_sessions`
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
		start = time.Now()
		if b, err := exec.CommandContext(ctx, c.sqlite3, "-readonly", t3test.StateDB(base), q).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, b)
		}
		cli = append(cli, time.Since(start))
	}
	sortD := func(v []time.Duration) { sort.Slice(v, func(a, b int) bool { return v[a] < v[b] }) }
	sortD(ours)
	sortD(cli)
	fmt.Fprintf(stdout, "idle verdict on %d threads, %d runs: median %s, best %s (target < 20ms)\n",
		c.threads, c.verdicts, ours[len(ours)/2].Round(100*time.Microsecond), ours[0].Round(100*time.Microsecond))
	fmt.Fprintf(stdout, "  sqlite3 CLI, same scan incl. process start: median %s; ratio ours/CLI %.2fx\n",
		cli[len(cli)/2].Round(100*time.Microsecond), ours[len(ours)/2].Seconds()/cli[len(cli)/2].Seconds())
	return nil
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
