package netboot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRackProfileStore(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RackProfile("r01"); !errors.Is(err, ErrNoProfile) {
		t.Fatalf("missing rack profile: %v, want ErrNoProfile", err)
	}
	if err := s.DeleteRackProfile("r01"); err != nil {
		t.Fatalf("deleting a missing rack profile: %v", err)
	}
	good := Profile{MAC: "02:00:00:00:00:01", Mode: ModeInstall, Kernel: "vmlinuz", Args: []string{"rackflow.scope=r01"}}
	if err := s.PutRackProfile("r01", good); err != nil {
		t.Fatal(err)
	}
	p, err := s.RackProfile("r01")
	if err != nil || p.MAC != "" || p.Kernel != "vmlinuz" || p.UpdatedAt.IsZero() {
		t.Fatalf("stored rack profile %+v, %v (want no MAC, the kernel, a time)", p, err)
	}
	for _, tc := range []struct {
		name, rack string
		p          Profile
		want       error
	}{
		{"bad rack name", "../r01", good, ErrInvalidName},
		{"empty rack name", "", good, ErrInvalidName},
		{"install without a kernel", "r01", Profile{Mode: ModeInstall}, ErrInvalidProfile},
		{"unknown mode", "r01", Profile{Mode: "pxe"}, ErrInvalidProfile},
		{"argument with a space", "r01", Profile{Mode: ModeInstall, Kernel: "vmlinuz", Args: []string{"a b"}}, ErrInvalidProfile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutRackProfile(tc.rack, tc.p); !errors.Is(err, tc.want) {
				t.Fatalf("PutRackProfile: %v, want %v", err, tc.want)
			}
			if p, err := s.RackProfile("r01"); err != nil || p.Kernel != "vmlinuz" {
				t.Fatalf("the stored profile changed: %+v, %v", p, err)
			}
		})
	}
	if err := s.DeleteRackProfile("r01"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), racksDir, "r01.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rack profile still on disk: %v", err)
	}
}
