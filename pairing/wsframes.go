package pairing

// frameWatcher follows one direction of a WebSocket byte stream just far
// enough to notice a close frame (opcode 0x8): it reads each frame header
// and skips the payload. The first side to send a close frame is the side
// that hung up; the other side's close is only the handshake's echo.
type frameWatcher struct {
	hdr      [14]byte
	have     int   // header bytes buffered
	skip     int64 // payload bytes left to skip
	sawClose bool
	broken   bool // the stream did not parse as frames; stop watching
}

// feed consumes p and reports whether a close frame header was completed in it.
func (f *frameWatcher) feed(p []byte) bool {
	for len(p) > 0 && !f.broken && !f.sawClose {
		if f.skip > 0 {
			n := int64(len(p))
			if n > f.skip {
				n = f.skip
			}
			f.skip -= n
			p = p[n:]
			continue
		}
		f.hdr[f.have] = p[0]
		f.have++
		p = p[1:]
		need := headerLen(f.hdr[:f.have])
		if need < 0 || f.have < need {
			continue
		}
		if f.hdr[0]&0x0f == 0x8 {
			f.sawClose = true
			return true
		}
		f.skip = payloadLen(f.hdr[:f.have])
		if f.skip < 0 {
			f.broken = true
		}
		f.have = 0
	}
	return false
}

// headerLen returns the full header length once the first two bytes are
// known, or -1 before that.
func headerLen(h []byte) int {
	if len(h) < 2 {
		return -1
	}
	n := 2
	switch h[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h[1]&0x80 != 0 {
		n += 4 // masking key
	}
	return n
}

func payloadLen(h []byte) int64 {
	switch l := h[1] & 0x7f; l {
	case 126:
		return int64(h[2])<<8 | int64(h[3])
	case 127:
		var v int64
		for _, b := range h[2:10] {
			v = v<<8 | int64(b)
		}
		return v
	default:
		return int64(l)
	}
}
