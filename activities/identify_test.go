package activities

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/workflows"
)

const identifyInventory = `credentials:
  c: {username: admin, password: pw}
racks:
  - name: r01
    credentials: c
    netboot: {server_ip: 127.0.0.1, subnet: 127.0.0.0/8, pool: 127.200.0.10-127.200.0.20, unknown: enrol}
nodes:
  - {name: r01n01, rack: r01, slot: 1, macs: ["02:52:46:01:00:01"], ip: 127.101.0.1, bmc: {driver: redfish, address: "127.0.0.1:1"}}
`

func identifyFixture(t *testing.T) (*Activities, *testsuite.TestActivityEnvironment, *netboot.Store, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(path, []byte(identifyInventory), 0o640); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := netboot.OpenStore(filepath.Join(dir, "netboot"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	acts := &Activities{Inventory: inv, Boot: boot, DialBMC: DialBMCLib(log), HTTPBase: "http://127.0.0.1:8880",
		CheckInKey: bytes.Repeat([]byte("k"), 32), Kernel: "vmlinuz", Initrd: "initrd.img", KernelArgs: []string{"console=ttyS0"}, Log: log}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return acts, env, boot, path
}

func TestSetDiscoveryBoot(t *testing.T) {
	acts, env, boot, _ := identifyFixture(t)
	if _, err := env.ExecuteActivity(acts.SetDiscoveryBoot, workflows.DiscoveryBootInput{Rack: "r01", Scope: "r01"}); err != nil {
		t.Fatal(err)
	}
	p, err := boot.RackProfile("r01")
	if err != nil {
		t.Fatal(err)
	}
	args, err := netboot.ParseIdentifyArgs(p.Args)
	if err != nil || p.Mode != netboot.ModeInstall || p.Kernel != "vmlinuz" || p.Initrd != "initrd.img" || p.Args[0] != "console=ttyS0" ||
		args.URL != "http://127.0.0.1:8880/v1/identify" || args.Scope != "r01" || !netboot.VerifyIdentifyToken(acts.CheckInKey, "r01", args.Token) {
		t.Fatalf("discovery profile %+v (args %+v, %v)", p, args, err)
	}
	_, err = env.ExecuteActivity(acts.SetDiscoveryBoot, workflows.DiscoveryBootInput{Rack: "r09", Scope: "r09"})
	wantType(t, err, workflows.ErrUnknownRack)
	_, err = env.ExecuteActivity(acts.SetDiscoveryBoot, workflows.DiscoveryBootInput{Rack: "r01", Scope: "R 01"})
	wantType(t, err, workflows.ErrInvalidName)
	if p2, err := boot.RackProfile("r01"); err != nil || p2.Args[len(p2.Args)-2] != p.Args[len(p.Args)-2] {
		t.Fatalf("a refused write changed the profile: %+v, %v", p2, err)
	}
	for range 2 { // idempotent
		if _, err := env.ExecuteActivity(acts.SetDiscoveryBoot, workflows.DiscoveryBootInput{Rack: "r01", Remove: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := boot.RackProfile("r01"); !errors.Is(err, netboot.ErrNoProfile) {
		t.Fatalf("after removal: %v", err)
	}
}

func TestRecordIdentified(t *testing.T) {
	acts, env, _, path := identifyFixture(t)
	rec := func(name, mac, ip string) (workflows.RecordIdentifiedResult, error) {
		v, err := env.ExecuteActivity(acts.RecordIdentified, workflows.RecordIdentifiedInput{Rack: "r01",
			Assignment: workflows.Assignment{Slot: 2, Name: name, MAC: mac, IP: ip}})
		var res workflows.RecordIdentifiedResult
		if err == nil {
			err = v.Get(&res)
		}
		return res, err
	}
	for _, tc := range []struct {
		name, node, mac, ip, typ, msg string
	}{
		{"MAC already another node's", "r01n02", "02:52:46:01:00:01", "127.101.0.2", workflows.ErrInventoryConflict, "is node r01n01's"},
		{"plan name already used", "r01n01", "02:52:46:0f:00:02", "127.101.0.2", workflows.ErrInventoryConflict, "r01n01"},
		{"address already used", "r01n02", "02:52:46:0f:00:02", "127.101.0.1/8", workflows.ErrInventoryConflict, "127.101.0.1"},
		{"address outside the subnet", "r01n02", "02:52:46:0f:00:02", "10.0.0.2", workflows.ErrInvalidName, "outside rack r01's subnet"},
		{"bad MAC", "r01n02", "nope", "127.101.0.2", workflows.ErrInvalidName, "not an Ethernet MAC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rec(tc.node, tc.mac, tc.ip)
			wantType(t, err, tc.typ)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v does not say %q", err, tc.msg)
			}
			if b, _ := os.ReadFile(path); string(b) != identifyInventory {
				t.Fatalf("a refused record changed the inventory:\n%s", b)
			}
		})
	}
	res, err := rec("r01n02", "02:52:46:0f:00:02", "127.101.0.2/8")
	if err != nil || res != (workflows.RecordIdentifiedResult{Node: "r01n02", Changed: true, NoBMC: true}) {
		t.Fatalf("record: %+v, %v", res, err)
	}
	if res, err := rec("r01n02", "02:52:46:0f:00:02", "127.101.0.2"); err != nil || res.Changed {
		t.Fatalf("repeated record: %+v, %v (want no change)", res, err)
	}
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := inv.Node("r01n02"); err != nil || n.IP != "127.101.0.2" || n.HasBMC() {
		t.Fatalf("recorded %+v, %v", n, err)
	}

	// A node without a BMC cannot be powered: a clear, non-retryable error.
	acts.Inventory = inv
	_, err = env.ExecuteActivity(acts.PowerCycle, workflows.PowerCycleInput{Node: "r01n02"})
	wantType(t, err, workflows.ErrBMCDriver)
	if !strings.Contains(err.Error(), "has no BMC") {
		t.Fatalf("power cycle of a node without a BMC: %v", err)
	}
}
