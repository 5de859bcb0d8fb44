package pairing

import (
	"bytes"
	"testing"
)

func frame(opcode byte, masked bool, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteByte(0x80 | opcode)
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b.WriteByte(m | byte(n))
	case n < 1<<16:
		b.Write([]byte{m | 126, byte(n >> 8), byte(n)})
	default:
		b.Write([]byte{m | 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	}
	if masked {
		b.Write([]byte{1, 2, 3, 4})
	}
	b.Write(payload)
	return b.Bytes()
}

func TestFrameWatcher(t *testing.T) {
	closeFrame := frame(0x8, true, []byte{0x03, 0xe8})
	// payloads that contain bytes looking like a close header must be skipped
	fake := bytes.Repeat([]byte{0x88, 0x02}, 40)
	tests := []struct {
		name   string
		stream []byte
		chunk  int
		want   bool
	}{
		{"text then close", append(frame(0x1, true, []byte("hi")), closeFrame...), 1000, true},
		{"close split byte by byte", append(frame(0x1, false, fake), closeFrame...), 1, true},
		{"16-bit length payload", append(frame(0x2, true, bytes.Repeat(fake, 10)), closeFrame...), 7, true},
		{"64-bit length payload", append(frame(0x2, false, bytes.Repeat(fake, 900)), closeFrame...), 4096, true},
		{"no close", append(frame(0x1, true, fake), frame(0x9, true, nil)...), 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w frameWatcher
			got := false
			for p := tc.stream; len(p) > 0; {
				n := min(tc.chunk, len(p))
				if w.feed(p[:n]) {
					got = true
				}
				p = p[n:]
			}
			if got != tc.want {
				t.Fatalf("close seen = %v, want %v", got, tc.want)
			}
		})
	}
}
