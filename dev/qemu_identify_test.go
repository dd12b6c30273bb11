package dev

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rackflow/rackflow/dev/qemurig"
	"github.com/rackflow/rackflow/workflows"
)

// TestQEMUIdentifyThenProvision identifies a QEMU machine by a real USB
// hot-plug and then provisions it: IdentifyBoot writes the identify profile
// and power-cycles the VM through IPMI; the real agent in the Debian
// initramfs waits for a USB disk; a QMP blockdev-add + device_add
// usb-storage on the VM's xHCI bus makes the guest kernel show /dev/sda;
// the agent asks POST /v1/identify, adds the production address and sets
// the hostname, and confirms from that address; then Provision installs
// the image as usual. Each step's wall time is logged ("step ...").
func TestQEMUIdentifyThenProvision(t *testing.T) {
	qemurig.Require(t)
	agent := buildAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	state := t.TempDir()
	env, err := Start(ctx, Options{
		StateDir: state, Rig: RigQEMU, Nodes: 1, Agent: agent, InMemory: true, Store: "dir",
		FrontendAddr: "127.0.0.1:0", ImageSize: 4 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	node := rigNode(t, env, "r01n01")
	step := func(name string, start time.Time) {
		t.Logf("step %-40s %6.1fs", name, time.Since(start).Seconds())
	}
	// The plan gives the machine in slot 1 its name and a production
	// address other than the one DHCP leased it.
	const prodIP = "10.77.0.201"
	if _, err := env.Client.StartIdentify(ctx, workflows.IdentifyInput{Scope: "r01", Plan: []workflows.PlanEntry{{Slot: 1, Name: "r01n01", IP: prodIP + "/24"}}}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	run, err := env.Client.IdentifyBoot(ctx, workflows.IdentifyBootInput{Node: "r01n01", Scope: "r01"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.WaitIdentifyBoot(ctx, run); err != nil {
		t.Fatal(err)
	}
	step("identify boot (profile + IPMI power cycle)", start)
	waitConsole(ctx, t, node, "waiting for a USB drive")
	step("agent waiting for a USB drive", start)

	start = time.Now()
	serial, rig, err := USBInsert(ctx, state, "r01n01")
	if err != nil || rig != RigQEMU {
		t.Fatalf("usb insert: %s %s %v", serial, rig, err)
	}
	step("QMP blockdev-add + device_add usb-storage", start)
	waitConsole(ctx, t, node, "confirmed from "+prodIP)
	step("usb insert → identified, applied, confirmed", start)
	console := readConsole(t, node)
	for _, want := range []string{"usb drive sda (removable, /dev/sda)", "identified slot 1 name r01n01 ip " + prodIP + "/24", "applied hostname r01n01"} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	st, err := env.Client.IdentifyStatus(ctx, "r01")
	if err != nil || st.Confirmed != 1 || st.Assignments[0].MAC != strings.ToLower(node.MAC) || st.Assignments[0].ConfirmedFrom != prodIP {
		t.Fatalf("identify status = %+v, %v; want r01n01's MAC confirmed from %s", st, err, prodIP)
	}
	if err := env.Client.IdentifyFinish(ctx, "r01"); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	version, err := LatestVersion(ctx, env.Images, DemoImage)
	if err != nil {
		t.Fatal(err)
	}
	prun, err := env.Client.Provision(ctx, workflows.ProvisionInput{Node: "r01n01", Image: DemoImage, Version: version, CheckInTimeout: 4 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	res, err := env.Client.WaitProvision(ctx, prun)
	if err != nil {
		t.Fatalf("provision after identify: %v\nconsole:\n%s", err, tail(node.Console()))
	}
	step("provision after identify", start)
	root, err := env.Images.Root(ctx, "r01n01")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := qemurig.DiskDigest(node.Disk(), root.Size); err != nil || got != root.Digest || res.Digest != root.Digest {
		t.Errorf("disk %s (%v), checked in %s; want the exported %s", got, err, res.Digest, root.Digest)
	}
}

func readConsole(t *testing.T, n qemurig.Node) string {
	t.Helper()
	b, err := os.ReadFile(n.Console())
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// waitConsole polls the node's serial console log (every 200 ms, until
// ctx ends) for a line containing want.
func waitConsole(ctx context.Context, t *testing.T, n qemurig.Node, want string) {
	t.Helper()
	for !strings.Contains(readConsole(t, n), want) {
		select {
		case <-ctx.Done():
			t.Fatalf("console never showed %q:\n%s", want, tail(n.Console()))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
