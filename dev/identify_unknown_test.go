package dev

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rackflow/rackflow/activities"
	"github.com/rackflow/rackflow/activities/bmc"
	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/dev/vrack"
	"github.com/rackflow/rackflow/workflows"
)

// TestIdentifyUnknownMachines identifies machines rackflow does not know
// (no inventory entry, no BMC it can use): with identify/r01 started for
// rack r01 (unknown: enrol, a pool), their DHCP gets a pool address and
// /discover/<mac>.ipxe the identify agent; a USB insertion gives them the
// plan's names and addresses; on confirmation the inventory records MAC →
// node and DHCP, reloading it, gives the production address. A plan name
// that is already another node's is confirmed but not recorded, with the
// reason, and the inventory keeps its node.
func TestIdentifyUnknownMachines(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	state := t.TempDir()
	bmcPort := freePort(t)
	gen, err := inventory.GenerateVirtual(1, 1, "127.0.0.1", bmcPort)
	if err != nil {
		t.Fatal(err)
	}
	gen.Racks[0].Netboot.Pool, gen.Racks[0].Netboot.Unknown = "127.200.0.10-127.200.0.20", "enrol"
	data, err := gen.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	invPath := filepath.Join(state, "site.yaml")
	if err := os.WriteFile(invPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	env, err := Start(ctx, Options{
		StateDir: state, Inventory: invPath, InMemory: true, Store: "dir",
		FrontendAddr: "127.0.0.1:0", DHCPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		BMCPort: bmcPort, ImageSize: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)

	// Two machines rackflow does not know, on the same network: their own
	// BMC emulators, which the operator (the test) powers on.
	unknown := []vrack.NodeSpec{
		{Name: "new1", Rack: "r01", MAC: net.HardwareAddr{0x02, 0x52, 0x46, 0x0f, 0, 1}, BMCAddr: "127.77.0.1:" + itoa(freePort(t)), Username: "admin", Password: inventory.VirtualRackPassword},
		{Name: "new2", Rack: "r01", MAC: net.HardwareAddr{0x02, 0x52, 0x46, 0x0f, 0, 2}, BMCAddr: "127.77.0.2:" + itoa(freePort(t)), Username: "admin", Password: inventory.VirtualRackPassword},
	}
	newRack, err := vrack.Start(ctx, vrack.Config{DHCPServer: env.Netboot.DHCPAddr(), TFTPServer: env.Netboot.TFTPAddr(),
		USBDir: usbDir(state), Logger: slog.New(slog.DiscardHandler)}, unknown)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = newRack.Close() })
	dial := activities.DialBMCLib(slog.New(slog.DiscardHandler))
	powerOn := func(spec vrack.NodeSpec) {
		t.Helper()
		b, err := dial(ctx, bmc.Config{Driver: "redfish", Address: spec.BMCAddr, Username: spec.Username, Password: spec.Password})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(ctx)
		if err := b.SetBootDevice(ctx, "pxe", false); err != nil {
			t.Fatal(err)
		}
		if err := b.PowerCycle(ctx); err != nil {
			t.Fatal(err)
		}
	}

	const scope = "r01"
	plan := []workflows.PlanEntry{{Slot: 2, Name: "r01n02", IP: "127.101.0.2"}, {Slot: 3, Name: "r01n01", IP: "127.101.0.3"}}
	if _, err := env.Client.StartIdentify(ctx, workflows.IdentifyInput{Scope: scope, Rack: "r01", Plan: plan}); err != nil {
		t.Fatal(err)
	}
	profile := filepath.Join(env.Netboot.Store().Dir(), "racks", "r01.json")
	waitFor(ctx, t, "the rack's discovery profile", func() bool { _, err := os.Stat(profile); return err == nil })

	for i, spec := range unknown {
		node := newRack.Node(spec.Name)
		powerOn(spec)
		st, err := node.WaitFor(ctx, func(s vrack.NodeState) bool { return s.Phase != vrack.PhaseOff && s.IP != nil })
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(st.IP.String(), "127.200.0.") {
			t.Fatalf("%s leased %v, want a pool address", spec.Name, st.IP)
		}
		waitFor(ctx, t, spec.Name+" in identify mode", func() bool { return hasEvent(node, vrack.StepAgent) })
		if _, err := vrack.InsertUSB(usbDir(state), spec.Name); err != nil {
			t.Fatal(err)
		}
		st, err = node.WaitFor(ctx, func(s vrack.NodeState) bool { return s.Phase != vrack.PhaseBooting })
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase != vrack.PhaseUp || st.Identity == nil || !st.Identity.Confirmed || st.Identity.Name != plan[i].Name {
			t.Fatalf("%s after the insertion: %+v identity %+v; events %v", spec.Name, st, st.Identity, node.Events())
		}
	}
	var status workflows.IdentifyStatus
	waitFor(ctx, t, "both confirmations handled", func() bool {
		status, err = env.Client.IdentifyStatus(ctx, scope)
		return err == nil && len(status.Assignments) == 2 && (status.Assignments[0].Recorded || status.Assignments[0].RecordError != "") &&
			(status.Assignments[1].Recorded || status.Assignments[1].RecordError != "")
	})
	if a := status.Assignments[0]; !a.Recorded || a.RecordError != "" {
		t.Fatalf("new1: %+v, want recorded", a)
	}
	if a := status.Assignments[1]; a.Recorded || !strings.Contains(a.RecordError, "r01n01") {
		t.Fatalf("new2 (plan name r01n01 taken): %+v, want not recorded with the reason", a)
	}
	inv, err := inventory.Load(invPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := inv.Node("r01n02")
	if err != nil || n.MACs[0] != unknown[0].MAC.String() || n.IP != "127.101.0.2" || n.Slot != 2 || n.HasBMC() {
		t.Fatalf("recorded node %+v, %v", n, err)
	}
	if old, _ := inv.Node("r01n01"); old.MACs[0] != gen.Nodes[0].MACs[0] || len(inv.Nodes) != 2 {
		t.Fatalf("the inventory's own r01n01 changed, or new2 was added: %+v (%d nodes)", old, len(inv.Nodes))
	}

	// The identified machine boots again: DHCP (inventory reloaded) gives
	// it its production address.
	waitFor(ctx, t, "identify/r01 ended", func() bool {
		return env.Client.IdentifyFinish(ctx, scope) == nil
	})
	if _, err := env.Client.WaitIdentify(ctx, scope); err != nil {
		t.Fatal(err)
	}
	saveHistory(t, env, workflows.IdentifyWorkflowID(scope), "identify-rack-recorded.json")
	if _, err := os.Stat(profile); !os.IsNotExist(err) {
		t.Fatalf("the discovery profile is still there after the end: %v", err)
	}
	time.Sleep(2100 * time.Millisecond) // the reservations look at the file every 2 s
	node := newRack.Node("new1")
	boots := node.State().Boots
	powerOn(unknown[0])
	st, err := node.WaitFor(ctx, func(s vrack.NodeState) bool { return s.Boots > boots && s.IP != nil && s.IP.String() == "127.101.0.2" })
	if err != nil {
		t.Fatalf("new1 did not lease its production address 127.101.0.2: %v (state %+v)", err, node.State())
	}
	t.Logf("new1 leased %v after its identification", st.IP)

	// A provision finds the recorded node (the workers' inventory is
	// reloaded too) and stops at its missing BMC; once the operator adds
	// it, the node provisions.
	provision := func() (workflows.ProvisionResult, error) {
		run, err := env.Client.Provision(ctx, workflows.ProvisionInput{Node: "r01n02", Image: DemoImage, Version: "v1", CheckInTimeout: time.Minute})
		if err != nil {
			return workflows.ProvisionResult{}, err
		}
		return env.Client.WaitProvision(ctx, run)
	}
	if _, err := provision(); err == nil || !strings.Contains(err.Error(), "has no BMC") {
		t.Fatalf("provision of the recorded node without a BMC: %v, want the no-BMC error", err)
	}
	inv, err = inventory.Load(invPath)
	if err != nil {
		t.Fatal(err)
	}
	for i := range inv.Nodes {
		if inv.Nodes[i].Name == "r01n02" {
			inv.Nodes[i].BMC = inventory.BMC{Driver: "redfish", Address: unknown[0].BMCAddr}
		}
	}
	edited, err := inv.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(invPath, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	res, err := provision()
	if err != nil {
		t.Fatalf("provision of the recorded node with its BMC: %v (events %v)", err, node.Events())
	}
	t.Logf("r01n02 provisioned: %+v", res)
}

func itoa(i int) string { return strconv.Itoa(i) }

func hasEvent(n *vrack.Node, step vrack.Step) bool {
	for _, e := range n.Events() {
		if e.Step == step && e.Err == nil {
			return true
		}
	}
	return false
}

// waitFor polls cond every 50 ms until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}
