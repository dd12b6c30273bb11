package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestMain lets the test binary play the benchmark's roles when it
// re-executes itself inside a namespace, as the command does.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestQuickRun runs the smoke configuration (-quick, ~20 s) end to end and
// checks the table has every part, with figures, and no failure. It needs
// root and the Debian tools; without them it skips, except under CI=true.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the quick benchmark run takes ~20 s")
	}
	if err := requireTools("ip", "tc", "ss", "curl", "in.tftpd", "dnsmasq"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("benchmark smoke run cannot run in CI: %v", err)
		}
		t.Skipf("benchmark smoke run skipped: %v", err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-quick", "-timeout", "5m"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Logf("table:\n%s", out)
	for _, re := range []string{
		`(?m)^  1 stream, MB/s \(3 runs each\) +\d+\.\d +\d+\.\d +\d+\.\d\d +\d+\.\d +\d+\.\d\d$`,
		`(?m)^  8 concurrent, MB/s \(1 runs each\) +\d+\.\d +\d+\.\d +\d+\.\d\d +\d+\.\d +\d+\.\d\d$`,
		`(?m)^  exchanges/s +[1-9]\d* +[1-9]\d* +\d+\.\d\d$`,
		`(?m)^  p99 latency, ms +\d+\.\d\d +\d+\.\d\d`,
		`(?m)^  failed exchanges +0 +0`,
		`(?m)^DHCP DORA.*dnsmasq --leasefile-ro`,
		`(?m)^Boot storm, 16 clients`,
		`(?m)^  N·F / 1000 Mbit/s \(a rack's provisioning link\), s +\d+\.\d\d`,
		`(?m)^  failed clients +0`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("table has no line matching %s", re)
		}
	}
	if strings.Contains(out, "NaN") || strings.Contains(out, "Inf") {
		t.Error("table has NaN or Inf figures")
	}
}

func TestParseFlags(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"-quick"}, ""},
		{[]string{"-dhcp-macs", "0"}, "-dhcp-macs 0"},
		{[]string{"-dhcp-macs", "70000"}, "-dhcp-macs 70000"},
		{[]string{"-dhcp-concurrency", "0"}, "-dhcp-concurrency"},
		{[]string{"-storm-clients", "-1"}, "-storm-clients"},
		{[]string{"-storm-rate-mbit", "-5"}, "-storm-rate-mbit"},
		{[]string{"-timeout", "0s"}, "-timeout"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-parts", "dhcp,storm"}, ""},
		{[]string{"-parts", "dhcp,pxe"}, `unknown part "pxe"`},
		{[]string{"-parts", ""}, `unknown part ""`},
		{[]string{"-nope"}, "flag provided but not defined"},
	} {
		var stderr bytes.Buffer
		_, err := parseFlags(tt.args, &stderr)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%q: error %v, want %q", tt.args, err, tt.wantErr)
		}
	}
	cfg, _ := parseFlags([]string{"-quick", "-storm-clients", "3"}, &bytes.Buffer{})
	if cfg.stormClients != 3 || cfg.dhcpMACs != 256 || cfg.tftpSize != 4<<20 {
		t.Errorf("-quick with -storm-clients 3: %+v", cfg)
	}
}
