package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play the server and client roles the
// benchmark re-executes itself in.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(childMain(role, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // "" → valid
		counts  []int
		size    int64
		methods []string // nil → both
	}{
		{name: "defaults", counts: []int{1, 4, 16, 32}, size: 32 << 20},
		{name: "quick", args: []string{"-quick"}, counts: []int{1, 4}, size: 4 << 20},
		{name: "quick keeps given flags", args: []string{"-quick", "-n", "2", "-size", "16"}, counts: []int{2}, size: 16 << 20},
		{name: "swarm only", args: []string{"-methods", "swarm"}, counts: []int{1, 4, 16, 32}, size: 32 << 20, methods: []string{methodSwarm}},
		{name: "methods in fixed order", args: []string{"-methods", "swarm,http"}, counts: []int{1, 4, 16, 32}, size: 32 << 20},
		{name: "unknown method", args: []string{"-methods", "http,ftp"}, wantErr: `"ftp" is not http or swarm`},
		{name: "no method", args: []string{"-methods", ""}, wantErr: `"" is not http or swarm`},
		{name: "not a number", args: []string{"-n", "1,x"}, wantErr: `"x" is not a client count`},
		{name: "zero clients", args: []string{"-n", "0"}, wantErr: `"0" is not a client count`},
		{name: "too many clients", args: []string{"-n", "201"}, wantErr: `"201" is not a client count`},
		{name: "descending", args: []string{"-n", "4,1"}, wantErr: "ascending"},
		{name: "repeated", args: []string{"-n", "4,4"}, wantErr: "ascending"},
		{name: "empty size", args: []string{"-size", "0"}, wantErr: "-size 0"},
		{name: "no rate", args: []string{"-rate", "0"}, wantErr: "-rate 0"},
		{name: "no timeout", args: []string{"-timeout", "0s"}, wantErr: "-timeout 0s"},
		{name: "stray argument", args: []string{"32"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"-nodes", "3"}, wantErr: "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseFlags(tc.args, new(bytes.Buffer))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tc.args, err)
			}
			methods := tc.methods
			if methods == nil {
				methods = []string{methodHTTP, methodSwarm}
			}
			if !slices.Equal(cfg.counts, tc.counts) || cfg.size != tc.size || !slices.Equal(cfg.methods, methods) {
				t.Errorf("parseFlags(%q) = counts %v, size %d, methods %v; want %v, %d, %v",
					tc.args, cfg.counts, cfg.size, cfg.methods, tc.counts, tc.size, methods)
			}
		})
	}
}

// TestBounds checks the Kumar & Ross bounds on hand-computed cases.
func TestBounds(t *testing.T) {
	for _, tc := range []struct {
		f, us, dmin, sumU float64
		n                 int
		cs, p2p           time.Duration
	}{
		// One client: both bounds are F over the slower of server and client.
		{f: 100, us: 10, dmin: 20, sumU: 20, n: 1, cs: 10 * time.Second, p2p: 10 * time.Second},
		// Slow client download dominates both.
		{f: 100, us: 100, dmin: 1, sumU: 10, n: 2, cs: 100 * time.Second, p2p: 100 * time.Second},
		// 32 clients, equal links: server-limited N·F/u_s vs F/u_s.
		{f: 100, us: 10, dmin: 10, sumU: 320, n: 32, cs: 320 * time.Second, p2p: 10 * time.Second},
		// Weak peers: the aggregate upload term dominates P2P.
		{f: 100, us: 10, dmin: 100, sumU: 30, n: 8, cs: 80 * time.Second, p2p: 20 * time.Second},
	} {
		cs, p2p := bounds(tc.f, tc.us, tc.dmin, tc.sumU, tc.n)
		if cs != tc.cs || p2p != tc.p2p {
			t.Errorf("bounds(%v, %v, %v, %v, %d) = %v, %v; want %v, %v", tc.f, tc.us, tc.dmin, tc.sumU, tc.n, cs, p2p, tc.cs, tc.p2p)
		}
	}
}

// requireTestbed skips the test (fails it under CI=true) unless it runs
// as root with ip and tc.
func requireTestbed(t *testing.T) {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("swarm benchmark smoke test cannot run in CI: "+format, args...)
		}
		t.Skipf("swarm benchmark smoke test skipped: "+format, args...)
	}
	if os.Geteuid() != 0 {
		unavailable("needs root (creates network namespaces and tc qdiscs)")
	}
	for _, b := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(b); err != nil {
			unavailable("%s not found (Debian package iproute2)", b)
		}
	}
}

// TestQuick runs the benchmark's quick mode end to end in namespaces: both
// methods at N = 1 and 4 complete, the table has every row, the plot is a
// PNG. (It deletes the namespaces of a concurrent benchmark run: rfsw-*.)
func TestQuick(t *testing.T) {
	requireTestbed(t)
	cfg, err := parseFlags([]string{"-quick", "-timeout", "3m"}, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	cfg.plot = filepath.Join(t.TempDir(), "swarm.png")
	var out bytes.Buffer
	if err := run(context.Background(), cfg, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	for _, row := range []string{"http  1", "swarm  1", "http  4", "swarm  4"} {
		if !strings.Contains(out.String(), row) {
			t.Errorf("table lacks the row %q", row)
		}
	}
	if !strings.Contains(out.String(), "goals for the swarm at N=4") {
		t.Error("no goals printed")
	}
	f, err := os.Open(cfg.plot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("plot: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Errorf("plot is %v, want a real image", b)
	}
	out2, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out2), nsPrefix) {
		t.Errorf("namespaces left behind:\n%s", out2)
	}
}
