package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestConsoleLines(t *testing.T) {
	con, buf := testConsole()
	con.step("start node=%s", "r01n01")
	con.failed(errors.New("image: HTTP 404 Not Found from http://x/\nsecond line"))
	con.finish(false)
	con.finish(true)
	want := []string{
		"rackflow-agent: [   1.50] start node=r01n01",
		"rackflow-agent: [   1.50] FAILED image: HTTP 404 Not Found from http://x/ second line",
		"rackflow-agent: failed",
		"rackflow-agent: done",
	}
	got := buf.lines()
	if len(got) != len(want) {
		t.Fatalf("lines = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestProcUptime(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "uptime")
	if err := os.WriteFile(good, []byte("7.62 12.00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := procUptime(good, time.Now())(); got != 7.62 {
		t.Errorf("uptime = %v, want 7.62", got)
	}
	bad := filepath.Join(dir, "garbage")
	if err := os.WriteFile(bad, []byte("x y"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bad, filepath.Join(dir, "missing")} {
		if got := procUptime(p, time.Now().Add(-3*time.Second))(); got < 3 || got > 60 {
			t.Errorf("fallback uptime from %s = %v, want about 3", p, got)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0:             "0 B",
		1023:          "1023 B",
		1024:          "1.0 KiB",
		4 << 30:       "4.0 GiB",
		5 << 30:       "5.0 GiB",
		1536 << 20:    "1.5 GiB",
		3 << 40:       "3.0 TiB",
		1<<62 + 1<<61: "6.0 EiB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
