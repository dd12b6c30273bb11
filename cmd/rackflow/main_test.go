package main

import (
	"bytes"
	"errors"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestBadUsageExits2 runs the CLI with bad flags and arguments: each prints
// usage and exits with status 2 before contacting anything.
func TestBadUsageExits2(t *testing.T) {
	tests := [][]string{
		{"rackflow", "provision", "--image", "demo", "--version", "v1"},
		{"rackflow", "provision", "--image", "demo", "--version", "v1", "Bad;Name"},
		{"rackflow", "provision", "--bogus"},
		{"rackflow", "provision", "r01n01"},
		{"rackflow", "worker", "--inventory", "x.yaml"},
		{"rackflow", "dev", "--nodes", "0"},
		{"rackflow", "dev", "--nodes", "many"},
		{"rackflow", "dev", "extra"},
		{"rackflow", "status", "../x"},
		{"rackflow", "--log-level", "loud", "status"},
		{"rackflow", "netboot", "--dhcp-mode", "relay", "--inventory", "x.yaml", "--checkin-key", "k"},
		{"rackflow", "enrol", "--inventory", "x.yaml", "02:52:46:0f:00:01"},
		{"rackflow", "discovered", "extra"},
		{"rackflow", "leases", "extra"},
	}
	for _, args := range tests {
		t.Run(args[1]+" "+args[len(args)-1], func(t *testing.T) {
			var out bytes.Buffer
			a := app()
			a.Writer, a.ErrWriter = &out, &out
			err := a.Run(args)
			var exit cli.ExitCoder
			if !errors.As(err, &exit) || exit.ExitCode() != exitUsage {
				t.Fatalf("err = %v, want exit status %d", err, exitUsage)
			}
			if !bytes.Contains(out.Bytes(), []byte("USAGE")) {
				t.Errorf("no usage printed:\n%s", out.String())
			}
		})
	}
}
