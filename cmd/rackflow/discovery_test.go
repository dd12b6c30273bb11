package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/netboot"
)

const enrolInventory = `# site inventory: keep this comment
credentials:
  bmc-default: {username: admin, password: secret}
racks:
  - name: r01
    credentials: bmc-default
    netboot: {server_ip: 10.0.0.1, subnet: 10.0.0.0/24, pool: 10.0.0.200-10.0.0.249, unknown: enrol}
nodes:
  - name: r01n01   # the first node
    rack: r01
    slot: 1
    macs: ["02:52:46:01:00:01"]
    ip: 10.0.0.11
    bmc: {driver: redfish, address: 10.0.1.11:443}
`

// runApp runs the CLI and returns its output and exit status (0, 1, or
// the ExitCoder's).
func runApp(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	a := app()
	a.Writer, a.ErrWriter = &out, &out
	err := a.Run(append([]string{"rackflow"}, args...))
	var exit cli.ExitCoder
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String() + err.Error(), exit.ExitCode()
	default:
		return out.String() + err.Error(), 1
	}
}

func TestDiscoveredAndEnrol(t *testing.T) {
	dir := t.TempDir()
	invPath := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(invPath, []byte(enrolInventory), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "dhcp")
	ds, err := netboot.OpenDiscovery(state)
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	const mac = "02:52:46:0f:00:77"
	for _, d := range []netboot.Discovered{
		{MAC: mac, Arch: 7, Vendor: "PXEClient:Arch:00007", Subnet: "r01", IP: "10.0.0.200", FirstSeen: seen, LastSeen: seen},
		{MAC: "02:52:46:0f:00:78", Subnet: "r09", Relay: "10.9.0.1", FirstSeen: seen.Add(time.Minute), LastSeen: seen.Add(time.Minute)},
	} {
		if err := ds.Record(d); err != nil {
			t.Fatal(err)
		}
	}

	out, code := runApp(t, "discovered", "--dhcp-state", state)
	if code != 0 || !strings.Contains(out, mac) || !strings.Contains(out, "7 EFI x86-64") || !strings.Contains(out, "10.9.0.1") {
		t.Fatalf("discovered: exit %d:\n%s", code, out)
	}
	out, code = runApp(t, "--json", "discovered", "--dhcp-state", state)
	var list []netboot.Discovered
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 2 || list[0].MAC != mac {
		t.Fatalf("discovered --json: exit %d, %v: %s", code, err, out)
	}

	enrol := func(extra ...string) (string, int) {
		return runApp(t, append([]string{"enrol", "--inventory", invPath, "--dhcp-state", state}, extra...)...)
	}
	refusals := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing --node", []string{"--ip", "10.0.0.12", "--bmc-address", "10.0.1.12", mac}, 2, "--node is required"},
		{"bad MAC", []string{"--node", "r01n02", "--ip", "10.0.0.12", "--bmc-address", "10.0.1.12", "nope"}, 2, "invalid MAC"},
		{"two MACs", []string{"--node", "r01n02", "--ip", "10.0.0.12", "--bmc-address", "10.0.1.12", mac, mac}, 2, "exactly one MAC"},
		{"bad node name", []string{"--node", "R01 N02", "--ip", "10.0.0.12", "--bmc-address", "10.0.1.12", mac}, 2, "not a valid name"},
		{"not discovered", []string{"--node", "r01n02", "--ip", "10.0.0.12", "--bmc-address", "10.0.1.12", "02:52:46:0f:00:99"}, 1, "was not discovered"},
		{"rack of the record unknown", []string{"--node", "r09n01", "--ip", "10.0.0.12", "--bmc-address", "10.0.1.12", "02:52:46:0f:00:78"}, 2, `rack "r09"`},
		{"IP taken", []string{"--node", "r01n02", "--ip", "10.0.0.11", "--bmc-address", "10.0.1.12", mac}, 1, `also node "r01n01"'s`},
		{"IP outside the subnet", []string{"--node", "r01n02", "--ip", "10.7.0.12", "--bmc-address", "10.0.1.12", mac}, 1, "outside rack r01's subnet"},
		{"name taken", []string{"--node", "r01n01", "--ip", "10.0.0.12", "--bmc-address", "10.0.1.12", mac}, 1, "defined twice"},
		{"bad driver", []string{"--node", "r01n02", "--ip", "10.0.0.12", "--bmc-address", "10.0.1.12", "--bmc-driver", "telnet", mac}, 1, "unknown driver"},
		{"no state dir", []string{"--dhcp-state", filepath.Join(dir, "nowhere"), "--node", "r01n02", "--ip", "10.0.0.12", "--bmc-address", "10.0.1.12", mac}, 2, "not a directory"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			out, code := enrol(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, tt.code, tt.want, out)
			}
			if b, _ := os.ReadFile(invPath); string(b) != enrolInventory {
				t.Fatal("a refused enrolment changed the inventory")
			}
			if _, err := ds.Get(mac); err != nil {
				t.Fatalf("a refused enrolment lost the discovery record: %v", err)
			}
		})
	}

	out, code = enrol("--node", "r01n02", "--ip", "10.0.0.12", "--bmc-address", "10.0.1.12:443", strings.ToUpper(mac))
	if code != 0 || !strings.Contains(out, "enrolled "+mac+" as r01n02 (rack r01, slot 2") {
		t.Fatalf("enrol: exit %d:\n%s", code, out)
	}
	inv, err := inventory.Load(invPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := inv.Node("r01n02")
	if err != nil || n.MACs[0] != mac || n.Slot != 2 || n.IP != "10.0.0.12" || n.BMC.Driver != "redfish" {
		t.Fatalf("enrolled node %+v, %v", n, err)
	}
	if res, ok := inv.Reservation(mustParseMAC(t, mac)); !ok || res.Node != "r01n02" {
		t.Fatalf("no reservation for the enrolled MAC: %+v", res)
	}
	if b, _ := os.ReadFile(invPath); !bytes.Contains(b, []byte("# site inventory: keep this comment")) || !bytes.Contains(b, []byte("# the first node")) {
		t.Fatalf("enrolment lost the inventory's comments:\n%s", b)
	}
	if _, err := ds.Get(mac); !errors.Is(err, netboot.ErrNotDiscovered) {
		t.Fatalf("discovery record after enrolment: %v", err)
	}
}

func mustParseMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

// TestLeases lists a journal the way the netboot service writes it.
func TestLeases(t *testing.T) {
	state := t.TempDir()
	journal := `{"op":"bind","ip":"10.0.0.201","mac":"02:52:46:0f:00:01","subnet":"r01","expires":"2026-01-02T04:04:05Z"}
{"op":"decline","ip":"10.0.0.200","subnet":"r01","expires":"2026-01-02T05:04:05Z"}
`
	if err := os.WriteFile(filepath.Join(state, "leases.jsonl"), []byte(journal), 0o640); err != nil {
		t.Fatal(err)
	}
	out, code := runApp(t, "leases", "--dhcp-state", state)
	if code != 0 || strings.Index(out, "10.0.0.200") > strings.Index(out, "10.0.0.201") || !strings.Contains(out, "quarantined") || !strings.Contains(out, "02:52:46:0f:00:01") {
		t.Fatalf("leases: exit %d:\n%s", code, out)
	}
	out, code = runApp(t, "--json", "leases", "--dhcp-state", state)
	var got []netboot.Lease
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got) != 2 || got[1].State != "bound" {
		t.Fatalf("leases --json: exit %d, %v: %s", code, err, out)
	}
	if err := os.WriteFile(filepath.Join(state, "leases.jsonl"), []byte("garbage\n"+journal), 0o640); err != nil {
		t.Fatal(err)
	}
	if out, code := runApp(t, "leases", "--dhcp-state", state); code != 1 || !strings.Contains(out, "line 1") {
		t.Fatalf("damaged journal: exit %d:\n%s", code, out)
	}
	if out, code := runApp(t, "leases", "--dhcp-state", filepath.Join(state, "nowhere")); code != 2 {
		t.Fatalf("missing state dir: exit %d:\n%s", code, out)
	}
}
