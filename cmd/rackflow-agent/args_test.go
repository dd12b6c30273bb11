package main

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseAgentOptions(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	tests := []struct {
		name     string
		cmdline  string
		want     agentOptions
		wantErr  string // substring; "" = no error
		warnings int
	}{
		{name: "none", cmdline: "console=ttyS0 quiet rackflow.node=r01n01"},
		{name: "disk path", cmdline: "rackflow.disk=/dev/vdb", want: agentOptions{Disk: "/dev/vdb"}},
		{name: "disk name", cmdline: "rackflow.disk=nvme0n1", want: agentOptions{Disk: "/dev/nvme0n1"}},
		{name: "last wins", cmdline: "rackflow.disk=vda rackflow.disk=sdb", want: agentOptions{Disk: "/dev/sdb"}},
		{name: "iface", cmdline: "rackflow.iface=eth1", want: agentOptions{Iface: "eth1"}},
		{name: "bootif", cmdline: "BOOTIF=01-52-54-00-12-34-56", want: agentOptions{BootIF: mac}},
		{name: "bootif upper case", cmdline: "BOOTIF=01-AA-BB-CC-DD-EE-0F", want: agentOptions{BootIF: net.HardwareAddr{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f}}},
		{name: "all", cmdline: "BOOTIF=01-52-54-00-12-34-56 rackflow.iface=enp1s0 rackflow.disk=/dev/sda",
			want: agentOptions{Disk: "/dev/sda", Iface: "enp1s0", BootIF: mac}},
		{name: "bootif not ethernet", cmdline: "BOOTIF=06-52-54-00-12-34-56", warnings: 1},
		{name: "bootif garbage", cmdline: "BOOTIF=01-zz", warnings: 1},
		{name: "bootif 8 bytes", cmdline: "BOOTIF=01-00-11-22-33-44-55-66-77", warnings: 1},
		{name: "empty disk", cmdline: "rackflow.disk=", wantErr: "args: empty rackflow.disk"},
		{name: "relative disk path", cmdline: "rackflow.disk=dev/vda", wantErr: "invalid rackflow.disk=dev/vda"},
		{name: "unclean disk path", cmdline: "rackflow.disk=/dev/../etc/passwd", wantErr: "invalid rackflow.disk"},
		{name: "bad disk name", cmdline: "rackflow.disk=v*da", wantErr: "invalid rackflow.disk"},
		{name: "empty iface", cmdline: "rackflow.iface=", wantErr: "invalid rackflow.iface=: empty"},
		{name: "long iface", cmdline: "rackflow.iface=abcdefghijklmnop", wantErr: "at most 15 bytes"},
		{name: "iface with slash", cmdline: "rackflow.iface=eth/0", wantErr: "invalid rackflow.iface"},
		{name: "iface dotdot", cmdline: "rackflow.iface=..", wantErr: "invalid rackflow.iface"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAgentOptions(strings.Fields(tt.cmdline))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if len(got.Warnings) != tt.warnings {
				t.Errorf("warnings = %q, want %d", got.Warnings, tt.warnings)
			}
			got.Warnings = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadCmdline(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(p, []byte("BOOT_IMAGE=/vmlinuz  console=ttyS0\trackflow.node=r01n01\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readCmdline(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"BOOT_IMAGE=/vmlinuz", "console=ttyS0", "rackflow.node=r01n01"}; !reflect.DeepEqual(got, want) {
		t.Errorf("words = %q, want %q", got, want)
	}
	if _, err := readCmdline(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.HasPrefix(err.Error(), "args: ") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestCheckInFallback(t *testing.T) {
	full := "rackflow.node=r01n01 rackflow.run=run1 rackflow.token=tok rackflow.checkin=http://10.0.0.1:8880/v1/checkin"
	tests := []struct {
		name    string
		cmdline string
		ok      bool
	}{
		{"complete", full, true},
		{"bad digest is still reportable", full + " rackflow.digest=md5:abc", true},
		{"https", strings.Replace(full, "http://", "https://", 1), true},
		{"no check-in URL", "rackflow.node=r01n01 rackflow.run=run1 rackflow.token=tok", false},
		{"relative check-in URL", strings.Replace(full, "http://10.0.0.1:8880", "", 1), false},
		{"ftp check-in URL", strings.Replace(full, "http://", "ftp://", 1), false},
		{"no token", strings.Replace(full, "rackflow.token=tok", "", 1), false},
		{"no node", strings.Replace(full, "rackflow.node=r01n01", "", 1), false},
		{"no run", strings.Replace(full, "rackflow.run=run1", "", 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ok := checkInFallback(strings.Fields(tt.cmdline))
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tt.ok, a)
			}
			if ok && (a.Node != "r01n01" || a.Run != "run1" || a.Token != "tok") {
				t.Errorf("args = %+v", a)
			}
		})
	}
}

func TestChooseIface(t *testing.T) {
	mac := func(last byte) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, 0, last} }
	ifs := []ifaceInfo{
		{Name: "lo", Loopback: true},
		{Name: "eth10", MAC: mac(10)},
		{Name: "eth2", MAC: mac(2)},
		{Name: "sit0"}, // no Ethernet address
		{Name: "eth1", MAC: mac(1)},
	}
	tests := []struct {
		name        string
		ifs         []ifaceInfo
		opts        agentOptions
		want        string
		wantWarning bool
		wantErr     string
	}{
		{name: "first by natural name order", ifs: ifs, want: "eth1"},
		{name: "named", ifs: ifs, opts: agentOptions{Iface: "eth10"}, want: "eth10"},
		{name: "named wins over BOOTIF", ifs: ifs, opts: agentOptions{Iface: "eth2", BootIF: mac(10)}, want: "eth2"},
		{name: "named loopback is allowed", ifs: ifs, opts: agentOptions{Iface: "lo"}, want: "lo"},
		{name: "named missing", ifs: ifs, opts: agentOptions{Iface: "eth9"}, wantErr: "iface: no network interface named eth9 (have lo, eth10, eth2, sit0, eth1)"},
		{name: "BOOTIF", ifs: ifs, opts: agentOptions{BootIF: mac(2)}, want: "eth2"},
		{name: "BOOTIF unknown falls back", ifs: ifs, opts: agentOptions{BootIF: mac(99)}, want: "eth1", wantWarning: true},
		{name: "only loopback", ifs: ifs[:1], wantErr: "iface: no network interface with an Ethernet address (have lo)"},
		{name: "nothing", wantErr: "(have none)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warning, err := chooseIface(tt.ifs, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("iface = %q, want %q", got, tt.want)
			}
			if (warning != "") != tt.wantWarning {
				t.Errorf("warning = %q, want one: %v", warning, tt.wantWarning)
			}
		})
	}
}

func TestNaturalCompare(t *testing.T) {
	ordered := []string{"eno1", "enp0s3", "enp0s25", "enp1s0", "eth", "eth0", "eth2", "eth10", "wlan0"}
	for i := range ordered {
		for j := range ordered {
			got := naturalCompare(ordered[i], ordered[j])
			switch {
			case i < j && got >= 0, i > j && got <= 0, i == j && got != 0:
				t.Errorf("naturalCompare(%q, %q) = %d", ordered[i], ordered[j], got)
			}
		}
	}
}
