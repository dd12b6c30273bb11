package qemurig_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rackflow/rackflow/activities/bmc"
	"github.com/rackflow/rackflow/dev/qemurig"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestRigBMC drives a rig VM's ipmi_sim through rackflow's bmc package
// (bmclib's ipmitool provider, the production IPMI path): power on starts
// QEMU with the boot device set before, power off stops it, a wrong
// password is ErrAuth and changes nothing.
func TestRigBMC(t *testing.T) {
	qemurig.Require(t)
	ctx := testCtx(t, 2*time.Minute)
	dir := t.TempDir()
	rig, err := qemurig.Start(ctx, qemurig.Config{Dir: dir, Nodes: 2, BMCPasswords: map[string]string{"r01n02": "changed-on-the-bmc"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	n := rig.Nodes[0]

	c, err := bmc.Open(ctx, bmc.Config{Driver: bmc.DriverIPMI, Address: n.BMCAddr, Username: qemurig.BMCUsername, Password: qemurig.BMCPassword}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if s, err := c.PowerState(ctx); err != nil || s != bmc.PowerOffState {
		t.Fatalf("PowerState = %q, %v; want off", s, err)
	}
	if err := c.SetBootDevice(ctx, bmc.BootPXE, false); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerCycle(ctx); err != nil { // off → on
		t.Fatal(err)
	}
	if !n.PoweredOn() || n.BootDevice() != "pxe" {
		t.Fatalf("after power-on: powered %v, boot device %q; want true, pxe", n.PoweredOn(), n.BootDevice())
	}
	if s, err := c.PowerState(ctx); err != nil || s != bmc.PowerOnState {
		t.Fatalf("PowerState = %q, %v; want on", s, err)
	}
	if err := c.SetBootDevice(ctx, bmc.BootDisk, false); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if n.PoweredOn() || n.BootDevice() == "pxe" {
		t.Fatalf("after power-off: powered %v, boot device %q; want false, not pxe", n.PoweredOn(), n.BootDevice())
	}

	other := rig.Nodes[1]
	_, err = bmc.Open(ctx, bmc.Config{Driver: bmc.DriverIPMI, Address: other.BMCAddr, Username: qemurig.BMCUsername, Password: qemurig.BMCPassword}, nil)
	if !errors.Is(err, bmc.ErrAuth) {
		t.Fatalf("Open with the wrong password = %v, want ErrAuth", err)
	}
	if log, _ := os.ReadFile(other.ChassisLog()); strings.Contains(string(log), "set ") {
		t.Fatalf("the BMC acted on a refused session:\n%s", log)
	}
}

// TestRigRestartsAfterCrash starts a rig in a child process, powers a VM
// on and kills the child (SIGKILL: no clean-up ran). A rig started in the
// same folder stops the dead rig's BMC and VM and replaces its namespace;
// while it runs, a third is refused; Close leaves nothing behind.
func TestRigRestartsAfterCrash(t *testing.T) {
	qemurig.Require(t)
	ctx := testCtx(t, 2*time.Minute)
	dir := t.TempDir()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRigCrashHelper$", "-test.count=1")
	child.Env = append(os.Environ(), crashHelperDir+"="+dir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "powered on ") {
		_ = child.Process.Kill()
		t.Fatalf("crash helper: %q, %v", line, err)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	rig, err := qemurig.Start(ctx, qemurig.Config{Dir: dir, Nodes: 1})
	if err != nil {
		t.Fatalf("Start over a crashed rig: %v", err)
	}
	if rig.Nodes[0].PoweredOn() || strings.TrimSpace(line) != "powered on "+rig.Nodes[0].Name {
		t.Fatalf("the crashed rig's VM still runs (helper said %q)", line)
	}
	if _, err := qemurig.Start(ctx, qemurig.Config{Dir: dir, Nodes: 1}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second rig in a running rig's folder: %v, want refused", err)
	}
	if err := rig.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/run/netns/" + rig.Namespace()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("namespace %s still exists after Close (%v)", rig.Namespace(), err)
	}
}

// crashHelperDir names the environment variable that makes
// TestRigCrashHelper run: the rig folder of TestRigRestartsAfterCrash.
const crashHelperDir = "RACKFLOW_RIG_CRASH_HELPER_DIR"

// TestRigCrashHelper is TestRigRestartsAfterCrash's child: it starts a rig
// of one node, powers it on, says so, and waits to be killed.
func TestRigCrashHelper(t *testing.T) {
	dir := os.Getenv(crashHelperDir)
	if dir == "" {
		t.Skip("helper process of TestRigRestartsAfterCrash")
	}
	ctx := testCtx(t, time.Minute)
	rig, err := qemurig.Start(ctx, qemurig.Config{Dir: dir, Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	n := rig.Nodes[0]
	c, err := bmc.Open(ctx, bmc.Config{Driver: bmc.DriverIPMI, Address: n.BMCAddr, Username: qemurig.BMCUsername, Password: qemurig.BMCPassword}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOn(ctx); err != nil || !n.PoweredOn() {
		t.Fatalf("power on: %v (running %v)", err, n.PoweredOn())
	}
	fmt.Println("powered on " + n.Name)
	<-ctx.Done() // killed before this
}

func TestStartRefusesBadConfig(t *testing.T) {
	qemurig.Require(t)
	for _, cfg := range []qemurig.Config{{}, {Dir: t.TempDir(), Nodes: qemurig.MaxNodes + 1}} {
		if _, err := qemurig.Start(context.Background(), cfg); err == nil {
			t.Errorf("Start(%+v) succeeded", cfg)
		}
	}
}
