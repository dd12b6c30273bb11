package netboot

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testKey is the check-in HMAC key of test services.
var testKey = []byte("0123456789abcdef-test-key")

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// recordingSignaler records check-ins and answers with errs[node] (nil when
// absent).
type recordingSignaler struct {
	mu    sync.Mutex
	calls []CheckIn
	errs  map[string]error
}

func (r *recordingSignaler) CheckIn(_ context.Context, c CheckIn) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	return r.errs[c.Node]
}

func (r *recordingSignaler) take() []CheckIn {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// writeFile writes data to dir/name (creating parents) and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// testEnv is a running Service on 127.0.0.1 with free ports.
type testEnv struct {
	svc       *Service
	cfg       Config
	signaler  *recordingSignaler
	tftpRoot  string
	artifacts string
	outside   string // a directory outside every served root
	stop      func() // stops the service now (idempotent; also run at cleanup)
}

// startService starts a Service with all three servers on 127.0.0.1:0 (edit
// cfg in mutate, e.g. to disable one) and stops it at test cleanup.
func startService(t *testing.T, mutate func(*Config)) *testEnv {
	t.Helper()
	base := t.TempDir()
	env := &testEnv{
		signaler:  &recordingSignaler{errs: map[string]error{}},
		tftpRoot:  filepath.Join(base, "tftp"),
		artifacts: filepath.Join(base, "artifacts"),
		outside:   filepath.Join(base, "outside"),
	}
	for _, d := range []string{env.tftpRoot, env.artifacts, env.outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		DHCPAddr:     "127.0.0.1:0",
		TFTPAddr:     "127.0.0.1:0",
		HTTPAddr:     "127.0.0.1:0",
		TFTPRoot:     env.tftpRoot,
		ArtifactsDir: env.artifacts,
		StoreDir:     filepath.Join(base, "store"),
		CheckInKey:   testKey,
		Reservations: StaticReservations{},
		Signaler:     env.signaler,
		Logger:       testLogger(t),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	env.cfg = cfg
	svc, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.svc = svc
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	env.stop = awaitRunning(t, svc, cancel, done)
	t.Cleanup(env.stop)
	return env
}

// awaitRunning waits until svc, whose Run reports on done and stops when
// cancel is called, is ready; it returns the function that stops it (once)
// and checks what Run returned.
func awaitRunning(t *testing.T, svc *Service, cancel context.CancelFunc, done <-chan error) (stop func()) {
	t.Helper()
	select {
	case <-svc.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("service not ready after 10s")
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return within 30s of cancel")
			}
		})
	}
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

func equalBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes, want %d bytes (content differs)", what, len(got), len(want))
	}
}

var errTest = errors.New("test failure")
