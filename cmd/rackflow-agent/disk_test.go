package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeDisk is one /sys/block entry; an empty attribute is not created.
type fakeDisk struct {
	name, removable, ro, size string
}

// good is a writable 8 GiB disk.
func good(name string) fakeDisk { return fakeDisk{name, "0", "0", "16777216"} }

// sysBlockTree builds a fake /sys/block and returns its path.
func sysBlockTree(t *testing.T, disks ...fakeDisk) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "block")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range disks {
		dir := filepath.Join(root, d.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for attr, v := range map[string]string{"removable": d.removable, "ro": d.ro, "size": d.size} {
			if v == "" {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, attr), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestSelectDisk(t *testing.T) {
	tests := []struct {
		name    string
		disks   []fakeDisk
		want    string
		wantErr string // substring
	}{
		{name: "single virtio", disks: []fakeDisk{good("vda")}, want: "vda"},
		{name: "virtio before sata", disks: []fakeDisk{good("sda"), good("vdb")}, want: "vdb"},
		{name: "sata before nvme", disks: []fakeDisk{good("nvme0n1"), good("sda")}, want: "sda"},
		{name: "nvme before xen", disks: []fakeDisk{good("xvda"), good("nvme0n1")}, want: "nvme0n1"},
		{name: "kernel order sdz before sdaa", disks: []fakeDisk{good("sdaa"), good("sdz")}, want: "sdz"},
		{name: "numeric nvme order", disks: []fakeDisk{good("nvme10n1"), good("nvme2n1"), good("nvme2n2")}, want: "nvme2n1"},
		{name: "usb thumb drive skipped", disks: []fakeDisk{{"sda", "1", "0", "31457280"}, good("sdb")}, want: "sdb"},
		{name: "read-only skipped", disks: []fakeDisk{{"vda", "0", "1", "100"}, good("vdb")}, want: "vdb"},
		{name: "empty skipped", disks: []fakeDisk{{"vda", "0", "0", "0"}, good("vdb")}, want: "vdb"},
		{name: "non-disks ignored", disks: []fakeDisk{good("loop0"), good("sr0"), good("dm-0"), good("ram0"), good("zram0"), good("nvme0c0n1"), good("md0"), good("vdc")}, want: "vdc"},
		{name: "only removable", disks: []fakeDisk{{"sda", "1", "0", "100"}}, wantErr: "no suitable disk in"},
		{name: "reasons listed", disks: []fakeDisk{{"sda", "1", "0", "100"}, {"vda", "0", "1", "100"}, {"vdb", "0", "0", "0"}},
			wantErr: "(vda read-only, vdb empty, sda removable)"},
		{name: "missing attributes", disks: []fakeDisk{{"vda", "", "0", "1"}, {"vdb", "0", "", "1"}, {"vdc", "0", "0", ""}, {"vdd", "0", "0", "x"}},
			wantErr: "vda (no removable attribute), vdb (no ro attribute), vdc (no size attribute), vdd (bad size \"x\")"},
		{name: "no candidates", disks: []fakeDisk{good("loop0"), good("sr0")}, wantErr: "no vd*, sd*, nvme*n*, xvd* device"},
		{name: "empty tree", wantErr: "no suitable disk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := selectDisk(sysBlockTree(t, tt.disks...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, errNoDisk) {
					t.Fatalf("err = %v, want errNoDisk containing %q (got disk %q)", err, tt.wantErr, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("disk = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSelectDiskNoSysfs(t *testing.T) {
	_, err := selectDisk(filepath.Join(t.TempDir(), "missing"))
	if err == nil || errors.Is(err, errNoDisk) || !strings.HasPrefix(err.Error(), "disk: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitForDisk(t *testing.T) {
	root := sysBlockTree(t, good("vda"))
	got, err := waitForDisk(context.Background(), root, "/dev", 0)
	if err != nil || got != "/dev/vda" {
		t.Fatalf("waitForDisk = %q, %v", got, err)
	}

	// A disk that appears while the agent waits is found.
	empty := sysBlockTree(t)
	go func() {
		time.Sleep(100 * time.Millisecond)
		dir := filepath.Join(empty, "nvme0n1")
		_ = os.MkdirAll(dir, 0o755)
		for attr, v := range map[string]string{"removable": "0", "ro": "0"} {
			_ = os.WriteFile(filepath.Join(dir, attr), []byte(v), 0o644)
		}
		_ = os.WriteFile(filepath.Join(dir, "size"), []byte("2048"), 0o644) // written last
	}()
	got, err = waitForDisk(context.Background(), empty, "/dev", 5*time.Second)
	if err != nil || got != "/dev/nvme0n1" {
		t.Fatalf("waitForDisk (late disk) = %q, %v", got, err)
	}

	start := time.Now()
	_, err = waitForDisk(context.Background(), sysBlockTree(t), "/dev", 0)
	if !errors.Is(err, errNoDisk) || time.Since(start) > time.Second {
		t.Fatalf("waitForDisk without wait = %v after %s", err, time.Since(start))
	}
}
