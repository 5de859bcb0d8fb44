package t3

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/t3fleet/t3fleet/adapters/hostfiles"
)

// Which listeners on the serve's port are another user's, in the socket
// tables as Linux writes them: one a connection to 127.0.0.1:<port> can
// reach (bound to it, to 0.0.0.0, to ::, or to ::ffff:127.0.0.1), and not
// another address, port or state.
func TestForeignListener(t *testing.T) {
	const (
		port = 3780 // 0EC4
		uid  = 1000
		v4   = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
		v6   = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
		any4 = "00000000:0000"
		any6 = "00000000000000000000000000000000:0000"
	)
	line := func(local, remote string, state, uid int) string {
		return fmt.Sprintf("   0: %s %s %02X 00000000:00000000 00:00000000 00000000 %5d        0 4242 1 000000001880fba1 20 4 30 10 -1\n", local, remote, state, uid)
	}
	for _, tc := range []struct {
		name     string
		tcp      string // lines of tcp, "" for none
		tcp6     string
		noTables bool
		want     string
	}{
		{"the serve's own listener", line("0100007F:0EC4", any4, 0x0A, uid), "", false, ""},
		{"another user's on 127.0.0.1", line("0100007F:0EC4", any4, 0x0A, 0), "", false, "127.0.0.1:3780 (uid 0)"},
		{"another user's on 0.0.0.0", line("00000000:0EC4", any4, 0x0A, 1001), "", false, "0.0.0.0:3780 (uid 1001)"},
		{"another user's on ::", "", line("00000000000000000000000000000000:0EC4", any6, 0x0A, 1002), false, "[::]:3780 (uid 1002)"},
		{"another user's on ::ffff:127.0.0.1", "", line("0000000000000000FFFF00000100007F:0EC4", any6, 0x0A, 1003), false, "[::ffff:127.0.0.1]:3780 (uid 1003)"},
		{"another user's on 127.0.0.2", line("0200007F:0EC4", any4, 0x0A, 0), "", false, ""},
		{"another user's on ::1", "", line("00000000000000000000000001000000:0EC4", any6, 0x0A, 0), false, ""},
		{"another user's on another port", line("0100007F:0EC5", any4, 0x0A, 0), "", false, ""},
		{"another user's connection, not a listener", line("0100007F:0EC4", "0100007F:8E9F", 0x01, 0), "", false, ""},
		{"no tables to read", "", "", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if !tc.noTables {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "tcp"), []byte(v4+tc.tcp), 0o644))
				require.NoError(t, os.WriteFile(filepath.Join(dir, "tcp6"), []byte(v6+tc.tcp6), 0o644))
			}
			assert.Equal(t, tc.want, foreignListener(&hostfiles.TCPTable{Dir: dir}, port, uid))
		})
	}
}
