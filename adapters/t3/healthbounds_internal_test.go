package t3

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allocatedBy returns how many bytes fn allocated on the heap.
func allocatedBy(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// The CLI is the candidate build, run as a user: what it prints is kept
// only up to a bound, however much it prints before its timeout (at pipe
// speed, tens of gigabytes in the mint's 20 s).
func TestRunCLIBoundsItsOutput(t *testing.T) {
	for _, stream := range []string{"stdout", "stderr"} {
		t.Run(stream, func(t *testing.T) {
			redirect := ""
			if stream == "stderr" {
				redirect = " >&2"
			}
			script := `head -c 300000000 /dev/zero` + redirect + `; echo '{"credential":"c"}'`
			var err error
			n := allocatedBy(func() {
				_, err = runCLI(context.Background(), []string{"sh", "-c", script}, nil, 20*time.Second, nil)
			})
			assert.Less(t, n, uint64(64<<20), "bytes allocated for the %s of a CLI that printed 300 MB", stream)
			if stream == "stdout" {
				require.Error(t, err, "output past the bound is no credential")
			}
		})
	}
}

// readLogs reads what the serve wrote, and the serve (or its user) shapes
// the directories it reads: what it reads is bounded in bytes and files, a
// file's size counted before it is read, and nothing it opens can block.
func TestReadLogsBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, logs string)
	}{
		{"many links to one file just under the per-file bound", func(t *testing.T, logs string) {
			one := filepath.Join(logs, "0.log")
			require.NoError(t, os.WriteFile(one, []byte(strings.Repeat("x", maxServeOutput-2)+"\n"), 0o644))
			for i := 1; i < 200; i++ {
				require.NoError(t, os.Link(one, filepath.Join(logs, fmt.Sprintf("%d.log", i))))
			}
		}},
		{"a sparse file far past the bound", func(t *testing.T, logs string) {
			f, err := os.Create(filepath.Join(logs, "server.log"))
			require.NoError(t, err)
			require.NoError(t, f.Truncate(256<<20))
			require.NoError(t, f.Close())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			logs := filepath.Join(base, "userdata", "logs")
			require.NoError(t, os.MkdirAll(logs, 0o755))
			tc.setup(t, logs)
			var got string
			n := allocatedBy(func() { got = readLogs(base) })
			assert.LessOrEqual(t, len(got), 8*maxServeOutput, "bytes read")
			assert.Less(t, n, uint64(64<<20), "bytes allocated")
		})
	}
}

// A log swapped for a FIFO between the listing and the open (the serve
// owns the directory) must not block the check's read: nobody ever writes
// to it.
func TestReadLogsNeverBlocksOnAFIFO(t *testing.T) {
	base := t.TempDir()
	logs := filepath.Join(base, "userdata", "logs")
	require.NoError(t, os.MkdirAll(logs, 0o755))
	regular, fifo := filepath.Join(base, "regular"), filepath.Join(base, "fifo")
	require.NoError(t, os.WriteFile(regular, []byte("a line\n"), 0o644))
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	name := filepath.Join(logs, "server.log")
	stop := make(chan struct{})
	flipped := make(chan struct{})
	var fifoSwaps atomic.Int64 // times the FIFO was put in place
	go func() {                // swap server.log between a regular file and a FIFO
		defer close(flipped)
		tmp := filepath.Join(logs, ".swap")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			src := regular
			if i%2 == 1 {
				src = fifo
			}
			if os.Link(src, tmp) == nil && os.Rename(tmp, name) == nil && src == fifo {
				fifoSwaps.Add(1)
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-flipped
		// Free a read that blocked: a writer on the FIFO, then EOF.
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})

	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		done := make(chan struct{})
		go func() { readLogs(base); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatal("readLogs blocked opening a FIFO put in place of a log")
		}
	}
	require.Positive(t, fifoSwaps.Load(), "the FIFO was never put in place of the log: nothing was tried")
}
