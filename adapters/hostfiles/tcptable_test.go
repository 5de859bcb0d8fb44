package hostfiles_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
)

// The samples under testdata/tcptable were written as a little-endian
// machine's kernel writes them (addresses are host-order words).
func needLittleEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the samples are a little-endian kernel's")
	}
}

const (
	header4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	line4   = "   1: 0100007F:8E9F 0100007F:0EC4 01 00000000:00000000 00:00000000 00000000  1000        0 98765 1 000000001880fba1 20 4 30 10 -1\n"
)

func TestParseTCPTable(t *testing.T) {
	needLittleEndian(t)
	sample := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", "tcptable", name))
		require.NoError(t, err)
		return string(b)
	}
	ap := netip.MustParseAddrPort
	tests := []struct {
		name, text string
		n          int                         // sockets
		want       map[int]hostfiles.TCPSocket // by index
	}{
		{"IPv4 table", sample("tcp"), 5, map[int]hostfiles.TCPSocket{
			0: {Local: ap("0.0.0.0:3780"), Remote: ap("0.0.0.0:0"), State: 0x0A, UID: 0, Inode: 635},
			1: {Local: ap("127.0.0.1:36511"), Remote: ap("127.0.0.1:3780"), State: 1, UID: 1000, Inode: 98765},
			3: {Local: ap("127.0.0.1:38483"), Remote: ap("127.0.0.1:3780"), State: 6, UID: 0, Inode: 0},
			4: {Local: ap("127.0.0.2:40000"), Remote: ap("127.0.0.1:3780"), State: 1, UID: 4294967294, Inode: 123},
		}},
		{"IPv6 table", sample("tcp6"), 4, map[int]hostfiles.TCPSocket{
			1: {Local: ap("[::1]:41394"), Remote: ap("[::1]:3780"), State: 1, UID: 1001, Inode: 5555},
			2: {Local: ap("[::ffff:127.0.0.1]:50000"), Remote: ap("[::ffff:127.0.0.1]:3780"), State: 1, UID: 1002, Inode: 7777},
		}},
		{"header alone", header4, 0, nil},
		{"lowercase hex", header4 + strings.ToLower(line4[:40]) + line4[40:], 1, map[int]hostfiles.TCPSocket{
			0: {Local: ap("127.0.0.1:36511"), Remote: ap("127.0.0.1:3780"), State: 1, UID: 1000, Inode: 98765},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := hostfiles.ParseTCPTable("tcp", []byte(tc.text))
			require.NoError(t, err)
			require.Len(t, got, tc.n)
			for i, w := range tc.want {
				assert.Equal(t, w, got[i], "socket %d", i)
			}
		})
	}
}

func TestParseTCPTableRefusesMalformed(t *testing.T) {
	fields := strings.Fields(line4)
	with := func(i int, v string) string { // line4 with field i replaced
		f := append([]string(nil), fields...)
		f[i] = v
		return header4 + strings.Join(f, " ") + "\n"
	}
	tests := []struct {
		name, text string
		line       int
	}{
		{"empty", "", 1},
		{"no header", line4, 1},
		{"another header", "  local_address sl\n" + line4, 1},
		{"cut short", header4 + strings.TrimSuffix(line4, "\n"), 2},
		{"blank line", header4 + "\n" + line4, 2},
		{"too few fields", header4 + "   1: 0100007F:8E9F 0100007F:0EC4 01 00000000:00000000 00:00000000 00000000 1000 0\n", 2},
		{"slot without colon", with(0, "1"), 2},
		{"slot not a number", with(0, "x:"), 2},
		{"address of 7 digits", with(1, "100007F:8E9F"), 2},
		{"address not hex", with(1, "0100007G:8E9F"), 2},
		{"address with a sign", with(1, "+100007F:8E9F"), 2},
		{"port of 3 digits", with(1, "0100007F:E9F"), 2},
		{"no port", with(1, "0100007F"), 2},
		{"families mixed", with(2, "00000000000000000000000001000000:0EC4"), 2},
		{"state of 1 digit", with(3, "1"), 2},
		{"state not hex", with(3, "0G"), 2},
		{"queues without colon", with(4, "0000000000000000"), 2},
		{"timer not hex", with(5, "00:0000000Z"), 2},
		{"retransmits short", with(6, "0"), 2},
		{"uid negative", with(7, "-1"), 2},
		{"uid with a sign", with(7, "+1000"), 2},
		{"uid over 32 bits", with(7, "4294967296"), 2},
		{"uid not a number", with(7, "root"), 2},
		{"timeout not a number", with(8, "x"), 2},
		{"inode not a number", with(9, "0x1"), 2},
		{"a bad line after good ones", header4 + line4 + line4 + "garbage\n", 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hostfiles.ParseTCPTable("/proc/net/tcp", []byte(tc.text))
			require.ErrorIs(t, err, hostfiles.ErrMalformedSocketLine)
			var le *hostfiles.LineError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, "/proc/net/tcp", le.Path)
			assert.Equal(t, tc.line, le.Line, err.Error())
			assert.Contains(t, err.Error(), "/proc/net/tcp:")
		})
	}
}

// PeerUID finds the peer's socket, not the dispatch's end of it, in
// whichever table holds it.
func TestTCPTablePeerUID(t *testing.T) {
	needLittleEndian(t)
	ap := netip.MustParseAddrPort
	dispatch4, dispatch6 := ap("127.0.0.1:3780"), ap("[::1]:3780")
	tests := []struct {
		name          string
		local, remote netip.AddrPort
		uid           uint32
		err           error
	}{
		{"IPv4 peer", dispatch4, ap("127.0.0.1:36511"), 1000, nil},
		{"IPv4 peer, given v4-mapped", ap("[::ffff:127.0.0.1]:3780"), ap("[::ffff:127.0.0.1]:36511"), 1000, nil},
		{"another loopback address", dispatch4, ap("127.0.0.2:40000"), 4294967294, nil},
		{"IPv6 peer", dispatch6, ap("[::1]:41394"), 1001, nil},
		{"IPv6 socket to an IPv4 address", dispatch4, ap("127.0.0.1:50000"), 1002, nil},
		{"closed: TIME-WAIT", dispatch4, ap("127.0.0.1:38483"), 0, hostfiles.ErrSocketUnowned},
		{"closed in FIN-WAIT-2", dispatch6, ap("[::1]:41395"), 0, hostfiles.ErrSocketUnowned},
		{"no such socket", dispatch4, ap("127.0.0.1:1"), 0, hostfiles.ErrSocketNotFound},
		{"connected elsewhere", ap("127.0.0.1:3781"), ap("127.0.0.1:36511"), 0, hostfiles.ErrSocketNotFound},
		{"the listener is no peer", dispatch4, ap("0.0.0.0:3780"), 0, hostfiles.ErrSocketNotFound},
	}
	tt := &hostfiles.TCPTable{Dir: filepath.Join("testdata", "tcptable")}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uid, err := tt.PeerUID(tc.local, tc.remote)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				assert.Contains(t, err.Error(), tc.remote.String(), "the error names the peer")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.uid, uid)
		})
	}
}

// A lookup fails, rather than guesses, when a table is missing or
// malformed (even after the line it wanted) or names two owners.
func TestTCPTablePeerUIDFailsClosed(t *testing.T) {
	needLittleEndian(t)
	ap := netip.MustParseAddrPort
	tests := []struct {
		name      string
		tcp, tcp6 string // "-": no such file
		err       error
	}{
		{"no tcp", "-", header4, os.ErrNotExist},
		{"no tcp6 to look further in", header4, "-", os.ErrNotExist},
		{"malformed after the match", header4 + line4 + "   2: junk\n", header4, hostfiles.ErrMalformedSocketLine},
		{"malformed tcp6", header4, "junk\n", hostfiles.ErrMalformedSocketLine},
		{"two owners", header4 + line4 + strings.Replace(line4, " 1000 ", " 1001 ", 1), header4, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, text := range map[string]string{"tcp": tc.tcp, "tcp6": tc.tcp6} {
				if text != "-" {
					require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
				}
			}
			_, err := (&hostfiles.TCPTable{Dir: dir}).PeerUID(ap("127.0.0.1:3780"), ap("127.0.0.1:36511"))
			require.Error(t, err)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
			}
			assert.False(t, errors.Is(err, hostfiles.ErrSocketNotFound))
		})
	}
	_, err := (&hostfiles.TCPTable{Dir: t.TempDir()}).PeerUID(netip.AddrPort{}, ap("127.0.0.1:36511"))
	require.Error(t, err, "no local address")
}
