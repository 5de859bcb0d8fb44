//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"zombiezen.com/go/sqlite"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// writerChild inserts orchestration events at rate per second into path,
// like a busy t3 server, printing "<start unix ns> <took ns>" per insert,
// until stdin closes. It runs in its own process so the snapshot's CPU work
// in the parent cannot starve it through the Go scheduler: only SQLite
// locks and the disk can stall it, as they would stall the real server.
func writerChild(ctx context.Context, path string, rate int, stdin io.Reader, stdout io.Writer) error {
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetBusyTimeout(5 * time.Second)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, stdin); close(done) }()
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	payload := `{"text":"` + strings.Repeat("x", 900) + `"}`
	stmt := c.Prep(`INSERT INTO orchestration_events (event_id, aggregate_kind, stream_id, stream_version, event_type, occurred_at, payload_json)
		VALUES (?, 'thread', 'thread-bench', ?, 'thread.message-sent', ?, ?)`)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		start := time.Now()
		stmt.BindText(1, fmt.Sprintf("bench-%d-%d", start.UnixNano(), i))
		stmt.BindInt64(2, int64(i))
		stmt.BindText(3, start.UTC().Format(t3test.TimeLayout))
		stmt.BindText(4, payload)
		_, err := stmt.Step()
		if err == nil {
			err = stmt.Reset()
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%d %d\n", start.UnixNano(), time.Since(start).Nanoseconds())
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// insert is one insert the writer reported.
type insert struct {
	start time.Time
	took  time.Duration
}

// writer is the parent's view of the writer process.
type writer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	ins   []insert
	err   error
	done  chan struct{}
}

func startWriter(ctx context.Context, path string, rate int) (*writer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-writer-child", path, "-rate", fmt.Sprint(rate))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &writer{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ns, took int64
			if _, err := fmt.Sscan(sc.Text(), &ns, &took); err != nil {
				continue
			}
			w.mu.Lock()
			w.ins = append(w.ins, insert{time.Unix(0, ns), time.Duration(took)})
			w.mu.Unlock()
		}
		err := cmd.Wait()
		w.mu.Lock()
		if w.err == nil {
			w.err = fmt.Errorf("writer exited: %v", err)
		}
		w.mu.Unlock()
	}()
	return w, nil
}

// window returns how long each insert running at any moment in [from, to]
// took, waiting (up to 10 s) for the writer to report an insert started
// after to, so an insert stalled across the end of the window is counted.
func (w *writer) window(from, to time.Time) ([]time.Duration, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		n := len(w.ins)
		last := time.Time{}
		if n > 0 {
			last = w.ins[n-1].start
		}
		err := w.err
		w.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if last.After(to) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("writer reported nothing for 10 s: stalled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var took []time.Duration
	keep := w.ins[:0]
	for _, in := range w.ins {
		if in.start.Add(in.took).After(from) && in.start.Before(to) {
			took = append(took, in.took)
		}
		if !in.start.Before(to) {
			keep = append(keep, in)
		}
	}
	w.ins = keep
	return took, nil
}

// Stop ends the writer process.
func (w *writer) Stop() {
	w.stdin.Close()
	<-w.done
}
