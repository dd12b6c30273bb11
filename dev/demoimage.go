package dev

import (
	"bytes"
	"encoding/binary"
	"io"
)

// labelSector is a 512-byte first sector naming the image, then zeros.
func labelSector(label string) io.Reader {
	sector := make([]byte, 512)
	copy(sector, label)
	return bytes.NewReader(sector)
}

// xorshift is a deterministic pseudo-random byte stream (xorshift64*): demo
// image content that does not compress away and is the same on every machine.
type xorshift struct{ s uint64 }

func newXorshift(seed uint64) *xorshift { return &xorshift{s: seed*0x9E3779B97F4A7C15 + 1} }

func (x *xorshift) Read(p []byte) (int, error) {
	var buf [8]byte
	for i := 0; i < len(p); i += 8 {
		x.s ^= x.s >> 12
		x.s ^= x.s << 25
		x.s ^= x.s >> 27
		binary.LittleEndian.PutUint64(buf[:], x.s*0x2545F4914F6CDD1D)
		copy(p[i:], buf[:])
	}
	return len(p), nil
}
