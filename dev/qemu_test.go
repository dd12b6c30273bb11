package dev

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/rackflow/rackflow/dev/qemurig"
	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

// buildAgent builds the static rackflow-agent for the rig's initramfs.
func buildAgent(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rackflow-agent")
	cmd := exec.Command("go", "build", "-o", out, "github.com/rackflow/rackflow/cmd/rackflow-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build rackflow-agent: %v\n%s", err, b)
	}
	return out
}

// TestQEMURig provisions QEMU machines through the real Provision workflow,
// IPMI (ipmi_sim through bmclib's ipmitool provider), iPXE, a Debian kernel
// and rackflow-agent, on four nodes at once (odd slots SeaBIOS with the iPXE
// ROM, even slots OVMF: PXE → ipxe.efi over TFTP → iPXE):
//
//   - r01n01 (BIOS), r01n02 (UEFI): provisioned; each VM's disk then holds
//     the exported image version, byte for byte;
//   - r01n03: its BMC's password is not the inventory's: the workflow fails
//     fast with the non-retryable BMCAuth and no power action happened;
//   - r01n04: its tap is down: no check-in, the power-cycle escalation, the
//     node failed with CheckInTimeout and its boot reset to disk via IPMI.
func TestQEMURig(t *testing.T) {
	qemurig.Require(t)
	agent := buildAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	env, err := Start(ctx, Options{
		StateDir: t.TempDir(), Rig: RigQEMU, Nodes: 4, RigFirmware: qemurig.FirmwareMixed, Agent: agent, InMemory: true, Store: "dir",
		FrontendAddr: "127.0.0.1:0", ImageSize: 4 << 20,
		RigBMCPasswords: map[string]string{"r01n03": "changed-on-the-bmc"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if err := env.QEMU.SetLink(ctx, "r01n04", false); err != nil {
		t.Fatal(err)
	}
	version, err := LatestVersion(ctx, env.Images, DemoImage)
	if err != nil {
		t.Fatal(err)
	}
	start := func(node string, checkIn time.Duration) starter.Run {
		r, err := env.Client.Provision(ctx, workflows.ProvisionInput{Node: node, Image: DemoImage, Version: version, CheckInTimeout: checkIn})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	begin := time.Now()
	runs := map[string]starter.Run{
		"r01n01": start("r01n01", 4*time.Minute),
		"r01n02": start("r01n02", 4*time.Minute),
		"r01n03": start("r01n03", 4*time.Minute),
		"r01n04": start("r01n04", 30*time.Second),
	}

	t.Run("provisioned", func(t *testing.T) {
		for _, node := range []string{"r01n01", "r01n02"} {
			res, err := env.Client.WaitProvision(ctx, runs[node])
			if err != nil {
				t.Fatalf("%s: %v\nconsole:\n%s", node, err, tail(rigNode(t, env, node).Console()))
			}
			t.Logf("%s provisioned %s@%s in %.1fs after %d boot(s)", node, res.Image, res.Version, time.Since(begin).Seconds(), res.BootAttempts)
			root, err := env.Images.Root(ctx, node)
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != root.Digest {
				t.Errorf("%s checked in digest %s, the exported root is %s", node, res.Digest, root.Digest)
			}
			if got, err := qemurig.DiskDigest(rigNode(t, env, node).Disk(), root.Size); err != nil || got != root.Digest {
				t.Errorf("%s: the VM's disk holds %s (%v) in its first %d bytes, want the exported image's %s", node, got, err, root.Size, root.Digest)
			}
		}
		tls := settledTimelines(t, env, "r01n01", "r01n02")
		for _, tl := range tls {
			if tl.Node != "r01n01" && tl.Node != "r01n02" {
				continue
			}
			t.Log("timeline: " + tl.String())
			if tl.Check < 0 || tl.DHCP < 0 || tl.Kernel < 0 || tl.ImageWritten < 0 {
				t.Errorf("%s: timeline lacks a step: %s", tl.Node, tl)
			}
			// UEFI (OVMF's PXE) fetches ipxe.efi over TFTP; BIOS's iPXE ROM needs no TFTP.
			if uefi := rigNode(t, env, tl.Node).Firmware == qemurig.FirmwareUEFI; uefi != (tl.TFTP >= 0) {
				t.Errorf("%s (%s firmware): TFTP step at %.1fs", tl.Node, rigNode(t, env, tl.Node).Firmware, tl.TFTP)
			}
		}
	})

	t.Run("wrong BMC credentials", func(t *testing.T) {
		n := rigNode(t, env, "r01n03")
		_, err := env.Client.WaitProvision(ctx, runs["r01n03"])
		app := appError(err, workflows.ErrBMCAuth)
		if app == nil || !app.NonRetryable() {
			t.Fatalf("r01n03: %v; want a non-retryable %s", err, workflows.ErrBMCAuth)
		}
		desc, err := env.Client.Temporal().DescribeWorkflowExecution(ctx, runs["r01n03"].WorkflowID, runs["r01n03"].RunID)
		if err != nil {
			t.Fatal(err)
		}
		info := desc.GetWorkflowExecutionInfo()
		t.Logf("r01n03 failed %.1fs after its start: %v", info.GetCloseTime().AsTime().Sub(info.GetStartTime().AsTime()).Seconds(), app)
		if log, _ := os.ReadFile(n.ChassisLog()); strings.Contains(string(log), "set ") || n.PoweredOn() {
			t.Fatalf("a power or boot action happened on r01n03:\n%s", log)
		}
	})

	t.Run("link down", func(t *testing.T) {
		n := rigNode(t, env, "r01n04")
		_, err := env.Client.WaitProvision(ctx, runs["r01n04"])
		app := appError(err, workflows.ErrCheckInTimeout)
		if app == nil {
			t.Fatalf("r01n04: %v; want %s", err, workflows.ErrCheckInTimeout)
		}
		t.Logf("r01n04 failed after %.1fs: %v", time.Since(begin).Seconds(), app)
		log, err := os.ReadFile(n.ChassisLog())
		if err != nil {
			t.Fatal(err)
		}
		// Boot 1 (power on from off), boot 2 (hard: off, on); the undo's
		// power cycle turns it on again asynchronously (ipmi_sim polls).
		if on := strings.Count(string(log), "set power 1"); on < 2 {
			t.Errorf("r01n04 was powered on %d times, want ≥ 2 (two boots):\n%s", on, log)
		}
		if dev := n.BootDevice(); dev == "pxe" {
			t.Errorf("r01n04's next boot device is still pxe after the undo")
		}
		desc, err := env.Client.Temporal().DescribeWorkflowExecution(ctx, runs["r01n04"].WorkflowID, runs["r01n04"].RunID)
		if err != nil {
			t.Fatal(err)
		}
		if s := desc.GetWorkflowExecutionInfo().GetStatus(); s != enums.WORKFLOW_EXECUTION_STATUS_FAILED {
			t.Errorf("r01n04's workflow is %s in the Web UI, want Failed", s)
		}
	})
}

// appError is the ApplicationError of type typ in err's chain, or nil.
func appError(err error, typ string) *temporal.ApplicationError {
	var app *temporal.ApplicationError
	for e := err; errors.As(e, &app); e = app.Unwrap() {
		if app.Type() == typ {
			return app
		}
	}
	return nil
}

func rigNode(t *testing.T, env *Env, name string) qemurig.Node {
	t.Helper()
	n, err := env.QEMU.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// tail returns the last 3 KB of a console log, for failure messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return strings.ReplaceAll(string(b), "\r", "")
}

// settledTimelines returns the rig's timelines once the agent's console
// lines of nodes are in: the guest writes "check-in accepted" to its serial
// console after the check-in the workflow already saw, and under TCG on a
// loaded host that line can trail by seconds. It waits at most a minute,
// then returns what there is (the caller reports missing steps).
func settledTimelines(t *testing.T, env *Env, nodes ...string) []qemurig.Timeline {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		tls, err := env.Timelines()
		if err != nil {
			t.Fatal(err)
		}
		settled := true
		for _, tl := range tls {
			if slices.Contains(nodes, tl.Node) && tl.Check >= 0 && tl.ImageWritten < 0 {
				settled = false
			}
		}
		if settled || time.Now().After(deadline) {
			return tls
		}
		time.Sleep(500 * time.Millisecond)
	}
}
