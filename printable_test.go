package t3fleet_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/t3fleet/t3fleet"
)

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// Plain text, as is: what every ordinary name, path and reason is.
		{"", ""},
		{"alice", "alice"},
		{"/var/backups/t3-state/alice/state-prebump-0.0.46-20260101-000000.sqlite", "/var/backups/t3-state/alice/state-prebump-0.0.46-20260101-000000.sqlite"},
		{"restart alice: 2 turn(s) in flight", "restart alice: 2 turn(s) in flight"},
		{`say "hi"`, `say "hi"`},
		{"Zoë's café ✓", "Zoë's café ✓"},
		{"\ufffd", "\ufffd"}, // the replacement rune, validly encoded, is text
		// Anything else, quoted.
		{"x\nalice  ok", `"x\nalice  ok"`},
		{"a\r\nb", `"a\r\nb"`},
		{"\x1b[2J\x1b[31mok\x1b[0m", `"\x1b[2J\x1b[31mok\x1b[0m"`},
		{"a\tb", `"a\tb"`},
		{"bad\xff\xfename", `"bad\xff\xfename"`},
		{"\x7f", `"\x7f"`},
		{"\u0085next line", `"\u0085next line"`},
		{"\u2028", `"\u2028"`},
		{"abc\u202egpj.exe", `"abc\u202egpj.exe"`}, // a bidi override
		{"no\u00a0break", `"no\u00a0break"`},
		{"   ", `"   "`},
		{" lead", `" lead"`},
		{"trail ", `"trail "`},
		{`"quoted"`, `"\"quoted\""`},
	} {
		assert.Equal(t, tc.want, t3fleet.Printable(tc.in), "%q", tc.in)
	}
}
