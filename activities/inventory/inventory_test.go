package inventory

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `credentials:
  rack-admin: {username: admin, password: secret}
  special: {username: root, password_env: RACKFLOW_TEST_PW}
racks:
  - name: r01
    credentials: rack-admin
    limits: {clones: 2, power_ons: 4, power_on_interval: 5s, in_flight: 8}
    netboot: {server_ip: 10.0.0.1, subnet: 10.0.0.0/24, router: 10.0.0.254, lease: 30m}
nodes:
  - name: r01n01
    rack: r01
    slot: 1
    macs: ["02:52:46:01:00:01"]
    ip: 10.0.0.11
    bmc: {driver: redfish, address: 10.0.1.11}
  - name: r01n02
    rack: r01
    slot: 2
    macs: ["02-52-46-01-00-02"]
    ip: 10.0.0.12
    bmc: {driver: ipmi, address: 10.0.1.12:623, credentials: special}
    boot_files: {efi-x86_64: snponly.efi, "11": arm/ipxe.efi}
`

func TestParseGood(t *testing.T) {
	inv, err := Parse("inv.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	n1, err := inv.Node("r01n01")
	if err != nil {
		t.Fatal(err)
	}
	c, err := inv.Credential(n1)
	if err != nil || c.Username != "admin" || c.Password != "secret" {
		t.Fatalf("inherited credential = %+v, %v", c, err)
	}
	n2, _ := inv.Node("r01n02")
	if n2.MACs[0] != "02:52:46:01:00:02" {
		t.Errorf("MAC not canonical: %s", n2.MACs[0])
	}
	t.Setenv("RACKFLOW_TEST_PW", "pw2")
	c, err = inv.Credential(n2)
	if err != nil || c.Username != "root" || c.Password != "pw2" {
		t.Fatalf("overridden credential = %+v, %v", c, err)
	}
	mac, _ := net.ParseMAC("02:52:46:01:00:02")
	res, ok := inv.Reservation(mac)
	if !ok || res.Node != "r01n02" || res.IP.String() != "10.0.0.12" || res.Router.String() != "10.0.0.254" || res.Lease.Minutes() != 30 {
		t.Fatalf("reservation = %+v, %v", res, ok)
	}
	if len(res.BootFiles) != 2 || res.BootFiles[7] != "snponly.efi" || res.BootFiles[11] != "arm/ipxe.efi" {
		t.Errorf("reservation boot files = %v", res.BootFiles)
	}
	if ones, _ := res.Mask.Size(); ones != 24 {
		t.Errorf("mask /%d, want /24", ones)
	}
	if _, err := inv.Node("nope"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("unknown node error = %v", err)
	}
}

// TestRackDrainURL: a rack's drain webhook is read as given.
func TestRackDrainURL(t *testing.T) {
	doc := strings.Replace(good, "    netboot: {server_ip", "    drain_url: https://ops.example/drain?rack=r01\n    netboot: {server_ip", 1)
	inv, err := Parse("inv.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := inv.Rack("r01"); !ok || r.DrainURL != "https://ops.example/drain?rack=r01" {
		t.Fatalf("rack = %+v, %v", r, ok)
	}
}

func TestCredentialMissingEnv(t *testing.T) {
	inv, err := Parse("inv.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	n2, _ := inv.Node("r01n02")
	os.Unsetenv("RACKFLOW_TEST_PW")
	if _, err := inv.Credential(n2); err == nil || !strings.Contains(err.Error(), "RACKFLOW_TEST_PW") {
		t.Fatalf("want error naming the variable, got %v", err)
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name    string
		replace [2]string
		want    string // "file:line: field: …" prefix
	}{
		{"bad node name", [2]string{"name: r01n02", "name: R01;rm"}, "inv.yaml:16: nodes[1].name:"},
		{"unknown rack", [2]string{"rack: r01\n    slot: 2", "rack: r09\n    slot: 2"}, "inv.yaml:17: nodes[1].rack: no rack named"},
		{"bad mac", [2]string{"02-52-46-01-00-02", "02:52:zz"}, "inv.yaml:19: nodes[1].macs[0]:"},
		{"dup mac", [2]string{"02-52-46-01-00-02", "02:52:46:01:00:01"}, "inv.yaml:19: nodes[1].macs[0]: MAC 02:52:46:01:00:01 is also node \"r01n01\"'s"},
		{"ip outside subnet", [2]string{"ip: 10.0.0.12", "ip: 10.9.0.12"}, "inv.yaml:20: nodes[1].ip:"},
		{"unknown driver", [2]string{"driver: ipmi", "driver: telnet"}, "inv.yaml:21: nodes[1].bmc.driver: unknown driver"},
		{"unknown credentials", [2]string{"credentials: special", "credentials: nobody"}, "inv.yaml:21: nodes[1].bmc.credentials: no credentials named"},
		{"slot zero", [2]string{"slot: 2", "slot: 0"}, "inv.yaml:18: nodes[1].slot:"},
		{"bad subnet", [2]string{"subnet: 10.0.0.0/24", "subnet: ten"}, "inv.yaml:8: racks[0].netboot.subnet:"},
		{"unknown boot arch", [2]string{"efi-x86_64: snponly.efi", "uefi: snponly.efi"}, "inv.yaml:22: nodes[1].boot_files.uefi: client architecture \"uefi\""},
		{"bad boot file", [2]string{"efi-x86_64: snponly.efi", "efi-x86_64: ../x.efi"}, "inv.yaml:22: nodes[1].boot_files.efi-x86_64: artifact name"},
		{"drain url not http", [2]string{"    netboot: {server_ip", "    drain_url: ftp://ops.example/drain\n    netboot: {server_ip"}, "inv.yaml:8: racks[0].drain_url: \"ftp://ops.example/drain\" is not an absolute http or https URL"},
		{"drain url relative", [2]string{"    netboot: {server_ip", "    drain_url: /drain\n    netboot: {server_ip"}, "inv.yaml:8: racks[0].drain_url:"},
		{"two passwords", [2]string{"password: secret}", "password: secret, password_env: X}"}, "inv.yaml:2: credentials.rack-admin:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(good, tt.replace[0], tt.replace[1], 1)
			if doc == good {
				t.Fatal("replacement did not apply")
			}
			_, err := Parse("inv.yaml", []byte(doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseSyntaxAndUnknownField(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": strings.Replace(good, "slot: 2", "slot: 2\n    colour: red", 1),
		"bad duration":  strings.Replace(good, "lease: 30m", "lease: soon", 1),
		"not yaml":      "racks: [",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("inv.yaml", []byte(doc))
			if err == nil || !strings.HasPrefix(err.Error(), "inv.yaml: ") || !strings.Contains(err.Error(), "line ") {
				t.Fatalf("error = %v, want file and line", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error = %v", err)
	}
}

func TestGenerateVirtual(t *testing.T) {
	inv, err := GenerateVirtual(2, 300, "127.0.0.1", 8443)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Nodes) != 600 || inv.Nodes[0].Name != "r01n001" || inv.Nodes[599].Name != "r02n300" {
		t.Fatalf("nodes: %d, first %s, last %s", len(inv.Nodes), inv.Nodes[0].Name, inv.Nodes[599].Name)
	}
	small, err := GenerateVirtual(1, 8, "127.0.0.1", 8443)
	if err != nil {
		t.Fatal(err)
	}
	if small.Nodes[7].Name != "r01n08" {
		t.Errorf("name = %s", small.Nodes[7].Name)
	}
	data, err := small.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("round-trip", data); err != nil {
		t.Fatalf("generated inventory does not parse back: %v", err)
	}
	if _, err := GenerateVirtual(0, 8, "127.0.0.1", 8443); err == nil {
		t.Error("0 racks accepted")
	}
}
