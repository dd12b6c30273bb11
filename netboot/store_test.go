package netboot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStorePutGetRoundTrip(t *testing.T) {
	stamp := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name   string
		in     Profile
		getMAC string
		want   Profile
	}{
		{
			name:   "local, canonical MAC",
			in:     Profile{MAC: "02:52:46:01:00:01", Node: "r01n01", Rack: "r01", Mode: ModeLocal, UpdatedAt: stamp},
			getMAC: "02:52:46:01:00:01",
			want:   Profile{MAC: "02:52:46:01:00:01", Node: "r01n01", Rack: "r01", Mode: ModeLocal, UpdatedAt: stamp},
		},
		{
			name: "install, upper-case dashed MAC",
			in: Profile{MAC: "02-52-46-01-00-0A", Node: "r01n10", Rack: "r01", Mode: ModeInstall,
				Kernel: "vmlinuz", Initrd: "initrd.img", Args: []string{"console=ttyS0", "rackflow.node=r01n10"}, UpdatedAt: stamp},
			getMAC: "02:52:46:01:00:0a",
			want: Profile{MAC: "02:52:46:01:00:0a", Node: "r01n10", Rack: "r01", Mode: ModeInstall,
				Kernel: "vmlinuz", Initrd: "initrd.img", Args: []string{"console=ttyS0", "rackflow.node=r01n10"}, UpdatedAt: stamp},
		},
		{
			name:   "dotted MAC form, get by upper case",
			in:     Profile{MAC: "0252.4601.00ff", Mode: ModeInstall, Kernel: "k/vmlinuz", UpdatedAt: stamp},
			getMAC: "02:52:46:01:00:FF",
			want:   Profile{MAC: "02:52:46:01:00:ff", Mode: ModeInstall, Kernel: "k/vmlinuz", UpdatedAt: stamp},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Put(tt.in); err != nil {
				t.Fatalf("Put: %v", err)
			}
			got, err := s.Get(tt.getMAC)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Get = %+v, want %+v", got, tt.want)
			}
			// A second Store on the same directory sees the same profile.
			s2, err := OpenStore(s.Dir())
			if err != nil {
				t.Fatal(err)
			}
			if got2, err := s2.Get(tt.want.MAC); err != nil || !reflect.DeepEqual(got2, tt.want) {
				t.Fatalf("second store Get = %+v, %v", got2, err)
			}
		})
	}
}

func TestStorePutStampsUpdatedAt(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(Profile{MAC: "02:00:00:00:00:01", Mode: ModeLocal}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("02:00:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	if got.UpdatedAt.IsZero() {
		t.Fatal("UpdatedAt not stamped")
	}
}

func TestStorePutInvalid(t *testing.T) {
	tests := []struct {
		name    string
		p       Profile
		wantErr error
	}{
		{"empty MAC", Profile{Mode: ModeLocal}, ErrInvalidMAC},
		{"garbage MAC", Profile{MAC: "not-a-mac", Mode: ModeLocal}, ErrInvalidMAC},
		{"short MAC", Profile{MAC: "02:52:46:01:00", Mode: ModeLocal}, ErrInvalidMAC},
		{"8-byte MAC", Profile{MAC: "02:52:46:01:00:01:02:03", Mode: ModeLocal}, ErrInvalidMAC},
		{"MAC with path", Profile{MAC: "../../etc/passwd", Mode: ModeLocal}, ErrInvalidMAC},
		{"empty mode", Profile{MAC: "02:52:46:01:00:01"}, ErrInvalidProfile},
		{"unknown mode", Profile{MAC: "02:52:46:01:00:01", Mode: "diskless"}, ErrInvalidProfile},
		{"install without kernel", Profile{MAC: "02:52:46:01:00:01", Mode: ModeInstall}, ErrInvalidProfile},
		{"kernel traversal", Profile{MAC: "02:52:46:01:00:01", Mode: ModeInstall, Kernel: "../vmlinuz"}, ErrInvalidProfile},
		{"absolute initrd", Profile{MAC: "02:52:46:01:00:01", Mode: ModeInstall, Kernel: "vmlinuz", Initrd: "/initrd"}, ErrInvalidProfile},
		{"kernel with space", Profile{MAC: "02:52:46:01:00:01", Mode: ModeInstall, Kernel: "vm linuz"}, ErrInvalidProfile},
		{"arg with newline", Profile{MAC: "02:52:46:01:00:01", Mode: ModeInstall, Kernel: "vmlinuz", Args: []string{"a\nshell"}}, ErrInvalidProfile},
		{"empty arg", Profile{MAC: "02:52:46:01:00:01", Mode: ModeInstall, Kernel: "vmlinuz", Args: []string{""}}, ErrInvalidProfile},
		{"bad node name", Profile{MAC: "02:52:46:01:00:01", Node: "R01N01", Mode: ModeLocal}, ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			err = s.Put(tt.p)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put error = %v, want %v", err, tt.wantErr)
			}
			entries, err := os.ReadDir(filepath.Join(s.Dir(), profilesDir))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Fatalf("invalid Put left %d files", len(entries))
			}
		})
	}
}

func TestStoreGetErrors(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mac     string
		wantErr error
	}{
		{"02:52:46:01:00:01", ErrNoProfile},
		{"zz:52:46:01:00:01", ErrInvalidMAC},
		{"", ErrInvalidMAC},
	}
	for _, tt := range tests {
		if _, err := s.Get(tt.mac); !errors.Is(err, tt.wantErr) {
			t.Errorf("Get(%q) error = %v, want %v", tt.mac, err, tt.wantErr)
		}
	}
}

func TestStoreDeleteIdempotent(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mac := "02:52:46:01:00:01"
	if err := s.Put(Profile{MAC: mac, Mode: ModeLocal}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Delete("02-52-46-01-00-01"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if _, err := s.Get(mac); !errors.Is(err, ErrNoProfile) {
		t.Fatalf("Get after Delete: %v, want ErrNoProfile", err)
	}
	if err := s.Delete("bogus"); !errors.Is(err, ErrInvalidMAC) {
		t.Fatalf("Delete(bogus) = %v, want ErrInvalidMAC", err)
	}
}

// TestStoreAtomicPut has writers replace one MAC's profile with two versions
// of different sizes while readers read it: every read must decode to one
// of the two versions, and no temp file may remain.
func TestStoreAtomicPut(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mac := "02:52:46:01:00:01"
	stamp := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	long := make([]string, 200)
	for i := range long {
		long[i] = "arg" + strings.Repeat("x", i%17)
	}
	versions := []Profile{
		{MAC: mac, Node: "a", Mode: ModeLocal, UpdatedAt: stamp},
		{MAC: mac, Node: "b", Mode: ModeInstall, Kernel: "vmlinuz", Args: long, UpdatedAt: stamp},
	}
	if err := s.Put(versions[0]); err != nil {
		t.Fatal(err)
	}
	const rounds = 100
	var wg sync.WaitGroup
	errs := make(chan error, 4*rounds)
	for w := range 2 {
		wg.Go(func() {
			for i := range rounds {
				if err := s.Put(versions[(i+w)%2]); err != nil {
					errs <- err
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range rounds {
				got, err := s.Get(mac)
				if err != nil {
					errs <- err
					continue
				}
				if !reflect.DeepEqual(got, versions[0]) && !reflect.DeepEqual(got, versions[1]) {
					errs <- errors.New("read a profile that is neither version: " + got.Node)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	entries, err := os.ReadDir(filepath.Join(s.Dir(), profilesDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "02-52-46-01-00-01.json" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("profiles dir holds %v, want only the profile", names)
	}
}

func TestStoreExport(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, b := t.TempDir(), t.TempDir()
	notDir := writeFile(t, t.TempDir(), "file", []byte("x"))

	steps := []struct {
		name    string
		do      func() error
		want    string // expected ExportDir after the step; "" → not exported
		wantErr error
	}{
		{"export a", func() error { return s.Export("r01n01", a) }, a, nil},
		{"export a again", func() error { return s.Export("r01n01", a) }, a, nil},
		{"swap to b", func() error { return s.Export("r01n01", b) }, b, nil},
		{"export missing dir fails", func() error { return s.Export("r01n01", filepath.Join(a, "missing")) }, b, fs.ErrNotExist},
		{"export a file fails", func() error { return s.Export("r01n01", notDir) }, b, errTest},
		{"unexport", func() error { return s.Unexport("r01n01") }, "", nil},
		{"unexport again", func() error { return s.Unexport("r01n01") }, "", nil},
	}
	for _, st := range steps {
		err := st.do()
		switch {
		case st.wantErr == nil && err != nil:
			t.Fatalf("%s: %v", st.name, err)
		case st.wantErr == errTest && err == nil:
			t.Fatalf("%s: no error", st.name)
		case st.wantErr != nil && st.wantErr != errTest && !errors.Is(err, st.wantErr):
			t.Fatalf("%s: error %v, want %v", st.name, err, st.wantErr)
		}
		got, err := s.ExportDir("r01n01")
		if st.want == "" {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s: ExportDir = %q, %v; want not exported", st.name, got, err)
			}
			continue
		}
		if err != nil || got != st.want {
			t.Fatalf("%s: ExportDir = %q, %v; want %q", st.name, got, err, st.want)
		}
	}
	entries, err := os.ReadDir(s.ExportsDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("exports dir not empty after unexport: %d entries", len(entries))
	}
}

func TestStoreExportInvalidNames(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, node := range []string{"", ".", "..", "../x", "a/b", "R01", "-a", ".hidden", "a b", strings.Repeat("a", 64)} {
		if err := s.Export(node, dir); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Export(%q) = %v, want ErrInvalidName", node, err)
		}
		if err := s.Unexport(node); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Unexport(%q) = %v, want ErrInvalidName", node, err)
		}
	}
	for _, node := range []string{"a", "r01n01", "0", "a.b_c-d", strings.Repeat("a", 63)} {
		if err := ValidName(node); err != nil {
			t.Errorf("ValidName(%q) = %v", node, err)
		}
	}
}
