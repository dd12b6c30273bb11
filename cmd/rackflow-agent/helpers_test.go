package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the printed lines.
func (s *syncBuffer) lines() []string {
	return strings.Split(strings.TrimSuffix(s.String(), "\n"), "\n")
}

// testConsole returns a console stamping every line with uptime 1.5 and
// the buffer it writes to.
func testConsole() (*console, *syncBuffer) {
	buf := &syncBuffer{}
	return &console{w: buf, uptime: func() float64 { return 1.5 }}, buf
}

// fastRetry retries every millisecond, at most tries times.
func fastRetry(tries uint) retryPolicy {
	return constant(time.Millisecond, tries, 10*time.Second)
}

// digestOf is "sha256:<hex>" of b.
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// testImage returns n deterministic, non-repeating-looking bytes.
func testImage(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// emptyFile creates an empty regular file in a temporary directory.
func emptyFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
