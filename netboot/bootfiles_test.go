package netboot

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// TestTFTPIPXEDir serves an iPXE directory laid out as Debian's ipxe
// package (ipxe.efi a symlink out of it) next to a TFTP root that
// overrides one image.
func TestTFTPIPXEDir(t *testing.T) {
	base := t.TempDir()
	ipxeDir := filepath.Join(base, "usr-lib-ipxe")
	realEFI := randomBytes(t, 4000)
	target := writeFile(t, base, "boot/ipxe.efi", realEFI)
	if err := os.MkdirAll(ipxeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(ipxeDir, "ipxe.efi")); err != nil {
		t.Fatal(err)
	}
	packaged := randomBytes(t, 3000)
	writeFile(t, ipxeDir, "undionly.kpxe", packaged)
	writeFile(t, ipxeDir, "sub/nested.efi", []byte("nested"))
	override := randomBytes(t, 2000)

	for _, tt := range []struct {
		name     string
		withRoot bool
		files    map[string][]byte // served name → content; nil → refused
	}{
		{"iPXE dir only", false, map[string][]byte{
			"ipxe.efi": realEFI, "undionly.kpxe": packaged, "sub/nested.efi": nil, "../boot/ipxe.efi": nil, "missing.efi": nil}},
		{"root overrides iPXE dir", true, map[string][]byte{
			"ipxe.efi": realEFI, "undionly.kpxe": override, "sub/nested.efi": nil, "./ipxe.efi": realEFI}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := startService(t, func(c *Config) {
				c.DHCPAddr, c.HTTPAddr, c.IPXEDir = "", "", ipxeDir
				if !tt.withRoot {
					c.TFTPRoot = ""
				}
			})
			if tt.withRoot {
				writeFile(t, env.tftpRoot, "undionly.kpxe", override)
			}
			for name, want := range tt.files {
				c := tftpClient(t, env.svc.TFTPAddr())
				wt, err := c.Receive(name, "octet")
				var buf bytes.Buffer
				if err == nil {
					_, err = wt.WriteTo(&buf)
				}
				switch {
				case want == nil && err == nil:
					t.Errorf("%s: served %d bytes, want a refusal", name, buf.Len())
				case want == nil && !strings.Contains(err.Error(), errTFTPRefused.Error()):
					t.Errorf("%s: error %q is not the server's refusal", name, err)
				case want != nil && err != nil:
					t.Errorf("%s: %v", name, err)
				case want != nil && !bytes.Equal(buf.Bytes(), want):
					t.Errorf("%s: got %d bytes, want %d (content differs)", name, buf.Len(), len(want))
				}
			}
		})
	}
}

func TestDHCPPerNodeBootFiles(t *testing.T) {
	_, conn, server := dhcpEnv(t, func(c *Config) {
		c.HTTPAddr = ""
		c.Reservations = StaticReservations{
			knownMAC: {Node: "r01n01", Rack: "r01", IP: reservedIP,
				BootFiles: map[uint16]string{uint16(iana.EFI_X86_64): "nodes/r01n01/snponly.efi"}},
			"02:52:46:01:00:02": {Node: "r01n02", Rack: "r01", IP: net.IPv4(127, 100, 1, 2).To4()},
		}
	})
	for _, tt := range []struct {
		name, mac string
		arch      iana.Arch
		want      string
	}{
		{"node's own file for its arch", knownMAC, iana.EFI_X86_64, "nodes/r01n01/snponly.efi"},
		{"service default for another arch", knownMAC, iana.INTEL_X86PC, "undionly.kpxe"},
		{"node without its own files", "02:52:46:01:00:02", iana.EFI_X86_64, "ipxe.efi"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			offer, _ := exchange(t, conn, server, discover(t, tt.mac, dhcpv4.WithOption(dhcpv4.OptClientArch(tt.arch))), 5*time.Second)
			if offer == nil {
				t.Fatal("no OFFER")
			}
			if offer.BootFileName != tt.want || offer.BootFileNameOption() != tt.want {
				t.Fatalf("boot file %q / option 67 %q, want %q", offer.BootFileName, offer.BootFileNameOption(), tt.want)
			}
		})
	}
}

func TestParseArch(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    uint16
		wantErr bool
	}{
		{"bios", 0, false},
		{"EFI-x86_64", 7, false},
		{"efi-bc", 9, false},
		{"efi-arm64", 11, false},
		{"16", 16, false},
		{"65535", 65535, false},
		{"65536", 0, true},
		{"-1", 0, true},
		{"", 0, true},
		{"uefi", 0, true},
	} {
		got, err := ParseArch(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseArch(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "efi-arm64") {
			t.Errorf("ParseArch(%q) error %q does not list the names", tt.in, err)
		}
	}
}
