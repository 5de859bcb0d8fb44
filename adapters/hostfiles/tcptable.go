package hostfiles

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/t3fleet/t3fleet/pairing"
)

// DefaultTCPTableDir holds Linux's tables of TCP sockets, tcp and tcp6.
const DefaultTCPTableDir = "/proc/net"

// TCPListen is the kernel's state of a listening socket (TCPSocket.State).
const TCPListen = 10

// Why TCPTable cannot name a socket's owner.
var (
	// ErrMalformedSocketLine: a line of a socket table that does not read
	// as the kernel writes it.
	ErrMalformedSocketLine = errors.New("malformed socket table line")
	// ErrSocketNotFound: no socket of this host has the peer's address and
	// port (it is another network namespace's, or already gone).
	ErrSocketNotFound = errors.New("no socket on this host has that address")
	// ErrSocketUnowned: the socket is listed but no process holds it any
	// more (closed, orphaned or in TIME-WAIT); the kernel then lists its
	// inode as 0 and, once in TIME-WAIT, its uid as 0 whoever opened it.
	ErrSocketUnowned = errors.New("the socket has no owner any more (closed)")
)

// TCPSocket is one line of a socket table.
type TCPSocket struct {
	Local, Remote netip.AddrPort // IPv4 sockets of an IPv6 table as ::ffff:a.b.c.d
	State         uint8          // the kernel's TCP state (1: established, 6: TIME-WAIT, TCPListen)
	UID           uint32         // the owner, as the reader's user namespace sees it
	Inode         uint64         // 0 for a socket no process holds
}

// TCPTable names the OS user who owns the other end of a connection made
// on this host, from the kernel's socket tables: the peer's socket is the
// line whose local address is the peer's and whose remote address is the
// listener's end, and its uid column is its owner. It is a
// pairing.PeerOwner. The zero value reads DefaultTCPTableDir on Linux and
// fails everywhere else, so an owner check fails closed there.
//
// It sees the sockets of its own network namespace only: a peer in
// another one (a container with its own network) is not found.
type TCPTable struct {
	// Dir holds the tables, files tcp and tcp6; empty means
	// DefaultTCPTableDir on Linux.
	Dir string
}

var _ pairing.PeerOwner = (*TCPTable)(nil)

// PeerUID returns the uid of the socket at remote connected to local.
// Both tables are parsed strictly: a malformed line is an error (a
// *LineError wrapping ErrMalformedSocketLine), never skipped.
func (t *TCPTable) PeerUID(local, remote netip.AddrPort) (uint32, error) {
	uid, err := t.peerUID(local, remote)
	if err != nil {
		return 0, fmt.Errorf("owner of %s (connected to %s): %w", remote, local, err)
	}
	return uid, nil
}

// dir is where the tables are read.
func (t *TCPTable) dir() (string, error) {
	dir := t.Dir
	if dir == "" {
		dir = defaultTCPTableDir
	}
	if dir == "" {
		return "", fmt.Errorf("socket tables on %s: %w", runtime.GOOS, errors.ErrUnsupported)
	}
	return dir, nil
}

// Listeners returns the listening sockets on port, of both tables. A
// table that cannot be read whole is left out, and its error returned
// beside the other's sockets.
func (t *TCPTable) Listeners(port uint16) ([]TCPSocket, error) {
	dir, err := t.dir()
	if err != nil {
		return nil, err
	}
	var out []TCPSocket
	var errs []error
	for _, name := range []string{"tcp", "tcp6"} {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		var found []TCPSocket
		if err == nil {
			err = scanTCPTable(path, data, func(s TCPSocket) {
				if s.State == TCPListen && s.Local.Port() == port {
					found = append(found, s)
				}
			})
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, found...)
	}
	return out, errors.Join(errs...)
}

func (t *TCPTable) peerUID(local, remote netip.AddrPort) (uint32, error) {
	dir, err := t.dir()
	if err != nil {
		return 0, err
	}
	if !local.IsValid() || !remote.IsValid() {
		return 0, errors.New("an address is missing")
	}
	want := TCPSocket{Local: unmapped(remote), Remote: unmapped(local)}
	// An IPv4 peer's socket is in tcp, or in tcp6 as ::ffff:a.b.c.d when
	// it is an IPv6 socket; an IPv6 peer's only in tcp6.
	tables := []string{"tcp6"}
	if want.Local.Addr().Is4() {
		tables = []string{"tcp", "tcp6"}
	}
	unowned := false
	for _, name := range tables {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		var uids []uint32
		err = scanTCPTable(path, data, func(s TCPSocket) {
			if unmapped(s.Local) != want.Local || unmapped(s.Remote) != want.Remote {
				return
			}
			if s.Inode == 0 {
				unowned = true
				return
			}
			uids = append(uids, s.UID)
		})
		switch {
		case err != nil:
			return 0, err
		case len(uids) > 1 && !allSame(uids):
			return 0, fmt.Errorf("%s lists that socket %d times, with different owners %v", path, len(uids), uids)
		case len(uids) > 0:
			return uids[0], nil
		}
	}
	if unowned {
		return 0, ErrSocketUnowned
	}
	return 0, ErrSocketNotFound
}

func allSame(uids []uint32) bool {
	for _, u := range uids[1:] {
		if u != uids[0] {
			return false
		}
	}
	return true
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

// ParseTCPTable parses a socket table as Linux writes /proc/net/tcp and
// /proc/net/tcp6 (path names it in errors): a header line, then one
// socket per line. It is strict: a line it cannot read whole is an error (a
// *LineError wrapping ErrMalformedSocketLine).
func ParseTCPTable(path string, data []byte) ([]TCPSocket, error) {
	var out []TCPSocket
	err := scanTCPTable(path, data, func(s TCPSocket) { out = append(out, s) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanTCPTable calls fn with each socket of data, the text of a table.
func scanTCPTable(path string, data []byte, fn func(TCPSocket)) error {
	text := string(data)
	if !strings.HasSuffix(text, "\n") {
		// The kernel ends every line; a table cut short is no table.
		last := text[strings.LastIndexByte(text, '\n')+1:]
		return &LineError{Path: path, Line: strings.Count(text, "\n") + 1, Text: last, Err: fmt.Errorf("%w: no end of line", ErrMalformedSocketLine)}
	}
	n := 0
	for line := range strings.Lines(text) {
		n++
		line = strings.TrimSuffix(line, "\n")
		if n == 1 {
			if f := strings.Fields(line); len(f) < 3 || f[0] != "sl" || f[1] != "local_address" {
				return &LineError{Path: path, Line: n, Text: line, Err: fmt.Errorf("%w: not the table's header", ErrMalformedSocketLine)}
			}
			continue
		}
		s, err := parseTCPSocket(line)
		if err != nil {
			return &LineError{Path: path, Line: n, Text: line, Err: fmt.Errorf("%w: %v", ErrMalformedSocketLine, err)}
		}
		fn(s)
	}
	if n == 0 {
		return &LineError{Path: path, Line: 1, Err: fmt.Errorf("%w: empty table", ErrMalformedSocketLine)}
	}
	return nil
}

// parseTCPSocket reads the fields of a socket line up to its inode:
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
func parseTCPSocket(line string) (TCPSocket, error) {
	var s TCPSocket
	f := strings.Fields(line)
	if len(f) < 10 {
		return s, fmt.Errorf("%d fields, want at least 10", len(f))
	}
	sl, ok := strings.CutSuffix(f[0], ":")
	if !ok || !decimal(sl) {
		return s, fmt.Errorf("slot %q", f[0])
	}
	var err error
	if s.Local, err = parseHexAddrPort(f[1]); err != nil {
		return s, fmt.Errorf("local address: %w", err)
	}
	if s.Remote, err = parseHexAddrPort(f[2]); err != nil {
		return s, fmt.Errorf("remote address: %w", err)
	}
	if s.Local.Addr().BitLen() != s.Remote.Addr().BitLen() {
		return s, errors.New("local and remote addresses of different families")
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil || len(f[3]) != 2 {
		return s, fmt.Errorf("state %q", f[3])
	}
	s.State = uint8(st)
	if !hexPair(f[4], 8, 8) {
		return s, fmt.Errorf("queues %q", f[4])
	}
	if !hexPair(f[5], 2, 8) {
		return s, fmt.Errorf("timer %q", f[5])
	}
	if !hexField(f[6], 8) {
		return s, fmt.Errorf("retransmits %q", f[6])
	}
	uid, err := strconv.ParseUint(f[7], 10, 32)
	if err != nil || !decimal(f[7]) {
		return s, fmt.Errorf("uid %q", f[7])
	}
	s.UID = uint32(uid)
	if !decimal(f[8]) {
		return s, fmt.Errorf("timeout %q", f[8])
	}
	if s.Inode, err = strconv.ParseUint(f[9], 10, 64); err != nil || !decimal(f[9]) {
		return s, fmt.Errorf("inode %q", f[9])
	}
	return s, nil
}

// parseHexAddrPort reads the kernel's ADDR:PORT: ADDR is 8 (IPv4) or 32
// (IPv6) hex digits, 32-bit words each printed as a number in the host's
// byte order; PORT is 4 hex digits, a number.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || (len(a) != 8 && len(a) != 32) || !hexDigits(p, 4) {
		return netip.AddrPort{}, fmt.Errorf("%q is not ADDR:PORT in hex", s)
	}
	var b [16]byte
	for i := 0; i < len(a); i += 8 {
		w, err := strconv.ParseUint(a[i:i+8], 16, 32)
		if err != nil || !hexDigits(a[i:i+8], 8) {
			return netip.AddrPort{}, fmt.Errorf("%q is not ADDR:PORT in hex", s)
		}
		binary.NativeEndian.PutUint32(b[i/2:], uint32(w))
	}
	port, _ := strconv.ParseUint(p, 16, 16)
	addr := netip.AddrFrom16(b)
	if len(a) == 8 {
		addr = netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// hexPair reports whether s is two hex numbers of at least a and b
// digits joined by a colon.
func hexPair(s string, a, b int) bool {
	x, y, ok := strings.Cut(s, ":")
	return ok && hexField(x, a) && hexField(y, b)
}

// hexField reports whether s is a hex number of at least n digits (the
// kernel's %0nX).
func hexField(s string, n int) bool {
	return len(s) >= n && hexDigits(s, len(s))
}

// hexDigits reports whether s is exactly n hex digits.
func hexDigits(s string, n int) bool {
	if len(s) != n || n == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func decimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
