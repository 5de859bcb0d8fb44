package t3test_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
)

// t3 builds its HTTP server layer first, which binds the port, then SQLite
// (the migrations), providers and routes, and attaches its request handler
// last (the maintainers' triage of t3code #12215). A connection made while
// the migrations run is accepted and never answered.
func TestStartBindsBeforeItMigrates(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, t3test.SeedState(dir, t3test.EraB, t3test.SeedOptions{}))
	// A writer holds the database, so the migrations wait (era C builds set
	// busy_timeout=5000) for as long as the test keeps it.
	conn, err := sqlite.OpenConn(t3test.StateDB(dir), sqlite.OpenReadWrite|sqlite.OpenWAL)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, sqlitex.ExecuteTransient(conn, "BEGIN IMMEDIATE", nil))
	release := func() { _ = sqlitex.ExecuteTransient(conn, "COMMIT", nil) }
	ports, err := t3test.FreePorts(1)
	require.NoError(t, err)
	addr := net.JoinHostPort(t3test.DefaultHost, strconv.Itoa(ports[0]))

	type started struct {
		srv *t3test.Server
		err error
	}
	done := make(chan started, 1)
	go func() {
		srv, err := t3test.Start(context.Background(), dir, t3test.Options{Era: t3test.EraC, Port: ports[0]})
		done <- started{srv, err}
	}()
	var early net.Conn
	deadline := time.Now().Add(3 * time.Second)
	for early == nil && time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			early = c
		} else {
			time.Sleep(10 * time.Millisecond) // polling a port that is not bound yet
		}
	}
	if early == nil {
		release()
		if s := <-done; s.srv != nil {
			s.srv.Close()
		}
		t.Fatal("the port was not bound while the migrations waited")
	}
	defer early.Close()
	select {
	case s := <-done:
		t.Fatalf("Start returned while the migrations waited: %v", s.err)
	default:
	}
	_, err = io.WriteString(early, "GET /.well-known/t3/environment HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)

	release()
	s := <-done
	require.NoError(t, s.err)
	defer s.srv.Close()
	lvl, err := t3test.ReadLedgerMax(t3test.StateDB(dir))
	require.NoError(t, err)
	assert.Equal(t, t3test.EraC.SchemaLevel(), lvl)
	require.NoError(t, early.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	n, err := early.Read(make([]byte, 1))
	var ne net.Error
	assert.True(t, errors.As(err, &ne) && ne.Timeout(), "a request made while it migrated is never answered: %d, %v", n, err)
}

// Its port taken, t3 fails before its SQLite layer is built: the database
// is left as it was.
func TestStartOnATakenPortMigratesNothing(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, t3test.SeedState(dir, t3test.EraB, t3test.SeedOptions{}))
	taken, err := net.Listen("tcp", net.JoinHostPort(t3test.DefaultHost, "0"))
	require.NoError(t, err)
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port

	_, err = t3test.Start(context.Background(), dir, t3test.Options{Era: t3test.EraC, Port: port})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "address already in use")
	lvl, err := t3test.ReadLedgerMax(t3test.StateDB(dir))
	require.NoError(t, err)
	assert.Equal(t, t3test.EraB.SchemaLevel(), lvl, "no migration ran")
}

// A request t3 leaves unanswered gets no answer on the way out either: the
// connection just closes, as when the process exits. (An answer there, even
// an empty 200, reads as a live instance to a readiness check.) Whether a
// handler answers before Close drops its connection is up to the
// scheduler, so several connections give the bug several chances.
func TestUnansweredRequestGetsNoAnswerAtClose(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults t3test.Faults
	}{
		{"wedged", t3test.Faults{Wedged: true}},
		{"in the start window", t3test.Faults{DeafStart: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := t3test.NewServer(t.TempDir(), t3test.Options{Faults: tc.faults})
			t.Cleanup(srv.Close)
			conns := make([]net.Conn, 8)
			for i := range conns {
				c, err := net.Dial("tcp", srv.Addr)
				require.NoError(t, err)
				defer c.Close()
				_, err = io.WriteString(c, "GET "+t3test.PathEnvironment+" HTTP/1.1\r\nHost: x\r\n\r\n")
				require.NoError(t, err)
				conns[i] = c
			}
			// Unanswered while it runs (and time for the requests to reach
			// the handler, which is where an answer at close came from).
			deadline := time.Now().Add(300 * time.Millisecond)
			var ne net.Error
			for i, c := range conns {
				require.NoError(t, c.SetReadDeadline(deadline))
				_, err := c.Read(make([]byte, 1))
				require.True(t, errors.As(err, &ne) && ne.Timeout(), "connection %d answered while running: %v", i, err)
			}

			srv.Close()
			for i, c := range conns {
				require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
				got, err := io.ReadAll(c)
				assert.Empty(t, string(got), "connection %d answered at close", i)
				assert.False(t, errors.As(err, &ne) && ne.Timeout(), "connection %d still open after Close: %v", i, err)
			}
		})
	}
}
