package hostfiles

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/pairing"
)

// DefaultDispatchTable is where the seed keeps its routing table.
const DefaultDispatchTable = "/etc/t3-serve/dispatch.json"

// DefaultUpstreamHost is the host instances listen on.
const DefaultUpstreamHost = "127.0.0.1"

// DefaultCheckInterval is the least time between two looks at the file.
const DefaultCheckInterval = 2 * time.Second

// DispatchEntry is one user's line in dispatch.json.
type DispatchEntry struct {
	OSUser string `json:"os_user"`
	Port   int    `json:"port"`
	// StateDir is optional (not in the seed's format): the instance's t3
	// --base-dir, for mint commands that take {state_dir}.
	StateDir string `json:"state_dir,omitempty"`
}

// DispatchTableOptions configures a DispatchTable. The zero value works.
type DispatchTableOptions struct {
	// UpstreamHost is the host in every instance's base URL; empty means
	// DefaultUpstreamHost.
	UpstreamHost string
	// CheckInterval is the least time between two reads of the file; zero
	// means DefaultCheckInterval, negative checks on every lookup.
	CheckInterval time.Duration
	// Logger receives reloads and refusals; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// DispatchTable is the seed's /etc/t3-serve/dispatch.json
// ({"<sso user>": {"os_user": "...", "port": N}}) as a pairing.Router. It
// reads the file again at most every CheckInterval, on lookup, and takes it
// when its content changed. A file that does
// not parse, or holds an invalid name or port, is refused as a whole: the
// last good table stays in use and the reason is logged.
type DispatchTable struct {
	path string
	opts DispatchTableOptions // defaults filled in

	table     atomic.Pointer[map[string]t3fleet.Instance]
	nextCheck atomic.Int64 // unix nanos

	mu      sync.Mutex // serialises reloads
	sum     [sha256.Size]byte
	lastErr error
}

var _ pairing.Router = (*DispatchTable)(nil)

// NewDispatchTable loads path. The first load must succeed.
func NewDispatchTable(path string, opts DispatchTableOptions) (*DispatchTable, error) {
	t := &DispatchTable{path: path, opts: opts}
	if t.opts.UpstreamHost == "" {
		t.opts.UpstreamHost = DefaultUpstreamHost
	}
	if t.opts.CheckInterval == 0 {
		t.opts.CheckInterval = DefaultCheckInterval
	}
	if t.opts.Now == nil {
		t.opts.Now = time.Now
	}
	if t.opts.Logger == nil {
		t.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Route returns user's instance, looking at the file first when it is due.
func (t *DispatchTable) Route(user string) (t3fleet.Instance, bool) {
	now := t.opts.Now().UnixNano()
	if next := t.nextCheck.Load(); now >= next && t.nextCheck.CompareAndSwap(next, now+int64(t.opts.CheckInterval)) {
		_, _ = t.Reload()
	}
	m := t.table.Load()
	if m == nil {
		return t3fleet.Instance{}, false
	}
	in, ok := (*m)[user]
	return in, ok
}

// Users returns the number of users in the table in use.
func (t *DispatchTable) Users() int {
	if m := t.table.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// Reload reads the file and takes it if its content changed (the file is
// small: reading it is cheaper than trusting size and mtime, which a
// deploy may preserve). It reports whether a new table took effect; on
// error the last good table stays.
func (t *DispatchTable) Reload() (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	data, err := os.ReadFile(t.path)
	if err != nil {
		return false, t.refuse(fmt.Errorf("dispatch table %s: %w", t.path, err))
	}
	sum := sha256.Sum256(data)
	if t.table.Load() != nil && sum == t.sum {
		t.lastErr = nil
		return false, nil
	}
	m, err := ParseDispatchTable(data, t.opts.UpstreamHost)
	if err != nil {
		t.sum = [sha256.Size]byte{}
		return false, t.refuse(fmt.Errorf("dispatch table %s: %w", t.path, err))
	}
	t.sum, t.lastErr = sum, nil
	t.table.Store(&m)
	t.opts.Logger.Info("dispatch table loaded", "path", t.path, "users", len(m))
	return true, nil
}

// refuse logs a refused reload once per distinct error. A first load has
// no last good table to keep: its error goes back to NewDispatchTable's
// caller alone.
func (t *DispatchTable) refuse(err error) error {
	if t.table.Load() != nil && (t.lastErr == nil || t.lastErr.Error() != err.Error()) {
		t.opts.Logger.Error("dispatch table refused, keeping the last good one", "err", err)
	}
	t.lastErr = err
	return err
}

// ParseDispatchTable parses dispatch.json into instances at host. Every SSO
// name must pass t3fleet.ValidSSOName, every os_user t3fleet.ValidOSUser,
// every port lie in 1..65535; one bad entry refuses the whole file.
func ParseDispatchTable(data []byte, host string) (map[string]t3fleet.Instance, error) {
	raw, err := decodeTable(data)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	out := make(map[string]t3fleet.Instance, len(raw))
	for user, e := range raw {
		if err := t3fleet.ValidSSOName(user); err != nil {
			return nil, fmt.Errorf("entry %q: %w", user, err)
		}
		if err := t3fleet.ValidOSUser(e.OSUser); err != nil {
			return nil, fmt.Errorf("entry %q: %w", user, err)
		}
		if e.Port < 1 || e.Port > 65535 {
			return nil, fmt.Errorf("entry %q: port %d out of range", user, e.Port)
		}
		out[user] = t3fleet.Instance{
			User:     user,
			OSUser:   e.OSUser,
			BaseURL:  "http://" + net.JoinHostPort(host, strconv.Itoa(e.Port)),
			StateDir: e.StateDir,
		}
	}
	return out, nil
}

// decodeTable reads one JSON object of entries and nothing after it,
// refusing a user given twice (JSON would keep the last one silently).
func decodeTable(data []byte) (map[string]DispatchEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil {
		return nil, err
	} else if tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	raw := map[string]DispatchEntry{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		user, _ := tok.(string)
		if _, dup := raw[user]; dup {
			return nil, fmt.Errorf("user %q given twice", user)
		}
		var e DispatchEntry
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("entry %q: %w", user, err)
		}
		raw[user] = e
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("text after the table's object")
	}
	return raw, nil
}
