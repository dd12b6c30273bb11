package qemurig

import (
	"os"
	"strings"
	"testing"
)

// Require skips t when the rig cannot run here (-short, or Missing is not
// empty), saying what is missing; under CI (env CI set) it fails instead:
// CI installs everything and runs as root, so the rig tests must run there.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("QEMU rig: skipped in -short mode")
	}
	if m := Missing(); len(m) > 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("QEMU rig must run in CI; missing: %s", strings.Join(m, ", "))
		}
		t.Skipf("QEMU rig: missing %s", strings.Join(m, ", "))
	}
}
