package bmc_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rackflow/rackflow/activities/bmc"
)

// fakeIPMItool is a shell script standing in for ipmitool (not installed on
// this machine; the ipmi_sim rig tests the real one). It records its
// arguments, checks the password that bmclib passes in IPMITOOL_PASSWORD, and
// answers like ipmitool's chassis commands. bmclib runs ipmitool with only
// IPMITOOL_PASSWORD in the environment, so the script uses shell builtins.
const fakeIPMItool = `#!/bin/sh
echo "$*" >> "@DIR@/args"
if [ "$IPMITOOL_PASSWORD" != "ipmi-pw-1" ]; then
	echo "Error: RAKP 2 HMAC is invalid"
	echo "Error: Unable to establish IPMI v2 / RMCP+ session"
	exit 1
fi
state=off
[ -f "@DIR@/power" ] && read state < "@DIR@/power"
case "$*" in
*"chassis power status") echo "Chassis Power is $state" ;;
*"chassis power on") echo on > "@DIR@/power"; echo "Chassis Power Control: Up/On" ;;
*"chassis power off") echo off > "@DIR@/power"; echo "Chassis Power Control: Down/Off" ;;
*"chassis power cycle") echo "Chassis Power Control: Cycle" ;;
*"chassis power reset") echo "Chassis Power Control: Reset" ;;
*"chassis bootdev pxe"*) echo "Set Boot Device to pxe" ;;
*"chassis bootdev disk"*) echo "Set Boot Device to disk" ;;
*) echo "unexpected command: $*"; exit 1 ;;
esac
`

func installFakeIPMItool(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	script := strings.ReplaceAll(fakeIPMItool, "@DIR@", dir)
	if err := os.WriteFile(filepath.Join(dir, "ipmitool"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	return dir
}

func ipmitoolCalls(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "args"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// The ipmi driver uses only ipmitool, with lanplus, cipher suite 3, the
// configured host/port/user, and the password only in the environment.
func TestIPMIOptionPlumbing(t *testing.T) {
	dir := installFakeIPMItool(t)
	ctx := testCtx(t)
	c, err := bmc.Open(ctx, bmc.Config{Driver: "ipmi", Address: "127.0.0.1:6230", Username: "admin", Password: "ipmi-pw-1"}, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() { _ = c.Close(ctx) }()
	if err := c.PowerCycle(ctx); err != nil { // off → on
		t.Fatal(err)
	}
	if err := c.PowerCycle(ctx); err != nil { // on → chassis power cycle
		t.Fatal(err)
	}
	if err := c.PowerReset(ctx); err != nil { // on → chassis power reset
		t.Fatal(err)
	}
	if err := c.SetBootDevice(ctx, "pxe", false); err != nil {
		t.Fatal(err)
	}
	if err := c.SetBootDevice(ctx, "disk", true); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := c.PowerState(ctx); err != nil || s != "off" {
		t.Fatalf("PowerState = %q, %v", s, err)
	}

	calls := ipmitoolCalls(t, dir)
	for _, call := range calls {
		for _, want := range []string{"-I lanplus", "-U admin", "-E", "-H 127.0.0.1 -p 6230", "-C 3"} {
			if !strings.Contains(call, want) {
				t.Errorf("ipmitool %q lacks %q", call, want)
			}
		}
		if strings.Contains(call, "ipmi-pw-1") {
			t.Errorf("password on the ipmitool command line: %q", call)
		}
	}
	var cmds []string
	for _, call := range calls {
		cmds = append(cmds, call[strings.Index(call, "-C 3 ")+len("-C 3 "):])
	}
	want := []string{
		"chassis power status", // Open
		// cycle when off: our state check, then bmclib checks twice (PowerSet and PowerOn)
		"chassis power status", "chassis power status", "chassis power status", "chassis power on",
		"chassis power status", "chassis power cycle", // cycle when on
		"chassis power status", "chassis power reset", // reset when on
		"chassis bootdev pxe",
		"chassis bootdev disk options=persistent",
		"chassis power off",
		"chassis power status",
	}
	if strings.Join(cmds, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ipmitool commands:\n%s\nwant:\n%s", strings.Join(cmds, "\n"), strings.Join(want, "\n"))
	}
}

func TestIPMIErrors(t *testing.T) {
	t.Run("bad password", func(t *testing.T) {
		dir := installFakeIPMItool(t)
		_, err := bmc.Open(testCtx(t), bmc.Config{Driver: "ipmi", Address: "127.0.0.1", Username: "admin", Password: "wrong-pw"}, nil)
		if !errors.Is(err, bmc.ErrAuth) {
			t.Fatalf("Open = %v, want ErrAuth", err)
		}
		// One attempt with suite 3: bmclib only falls back to suite 17 when no suite is set.
		calls := ipmitoolCalls(t, dir)
		if len(calls) != 1 || !strings.Contains(calls[0], "-H 127.0.0.1 -p 623 ") {
			t.Fatalf("ipmitool calls %q, want one on the default port 623", calls)
		}
	})
	t.Run("ipmitool missing", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := bmc.Open(testCtx(t), bmc.Config{Driver: "ipmi", Address: "127.0.0.1:6230", Username: "admin", Password: "pw"}, nil)
		if !errors.Is(err, bmc.ErrDriver) {
			t.Fatalf("Open = %v, want ErrDriver", err)
		}
	})
}
