package zfsfuse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gozfs "github.com/mistifyio/go-zfs/v3"
)

func TestValidPoolName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"rackflow", true},
		{"rf_test-1", true},
		{"a", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"1pool", false},
		{"Pool", false},
		{"a b", false},
		{"a/b", false},
		{"../x", false},
		{"mirror1", false},
		{"log", false},
		{"c0t0", false},
	}
	for _, tt := range tests {
		if err := validPoolName(tt.name); (err == nil) != tt.ok {
			t.Errorf("validPoolName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestPathWith(t *testing.T) {
	p := &Pool{BinDir: "/s/zfs/bin"}
	tests := []struct{ in, want string }{
		{"", "/s/zfs/bin"},
		{"/usr/bin:/bin", "/s/zfs/bin:/usr/bin:/bin"},
		{"/s/zfs/bin:/usr/bin", "/s/zfs/bin:/usr/bin"},
		{"/usr/bin:/s/zfs/bin", "/s/zfs/bin:/usr/bin:/s/zfs/bin"},
	}
	for _, tt := range tests {
		if got := p.pathWith(tt.in); got != tt.want {
			t.Errorf("pathWith(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	t.Setenv("PATH", "/usr/bin")
	var paths []string
	for _, kv := range p.Env() {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			paths = append(paths, v)
		}
	}
	if len(paths) != 1 || paths[0] != "/s/zfs/bin:/usr/bin" {
		t.Errorf("Env() PATH entries = %q, want exactly [/s/zfs/bin:/usr/bin]", paths)
	}
}

func TestShellQuote(t *testing.T) {
	out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(`/a b/it's "x"`)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `/a b/it's "x"` {
		t.Errorf("round trip = %q", out)
	}
}

// requireZFSFuse skips when zfs-fuse cannot be used here.
func requireZFSFuse(t *testing.T) {
	t.Helper()
	if !Installed() {
		t.Skip("zfs-fuse is not installed (apt-get install zfs-fuse); skipping real-ZFS test")
	}
	if os.Geteuid() != 0 {
		t.Skip("zfs-fuse needs root (its socket is /var/run/zfs/zfs_socket, mode 0700); skipping real-ZFS test")
	}
}

func uniquePoolName(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "rfzt" + hex.EncodeToString(b)
}

func TestEnsureRealPool(t *testing.T) {
	requireZFSFuse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	state := t.TempDir()
	name := uniquePoolName(t)

	p, err := Ensure(ctx, state, name, MinSize*4, log)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Destroy(context.Background()); err != nil {
			t.Errorf("cleanup Destroy: %v", err)
		}
	})
	wantBase := filepath.Join(state, "zfs")
	if p.File != filepath.Join(wantBase, "pool.img") || p.Mountpoint != filepath.Join(wantBase, "mnt") || p.BinDir != filepath.Join(wantBase, "bin") {
		t.Fatalf("Pool = %+v, want paths under %s", p, wantBase)
	}
	if st, err := os.Stat(p.File); err != nil || st.Size() != MinSize*4 {
		t.Fatalf("pool file: %v, %v", st, err)
	}

	again, err := Ensure(ctx, state, name, 0, log)
	if err != nil || *again != *p {
		t.Fatalf("second Ensure = %+v, %v; want %+v", again, err, p)
	}

	t.Setenv("PATH", p.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"))

	t.Run("go-zfs through the shims", func(t *testing.T) {
		zp, err := gozfs.GetZpool(name)
		if err != nil {
			t.Fatalf("GetZpool: %v", err)
		}
		if zp.Health != gozfs.ZpoolOnline || zp.Size == 0 || zp.Free == 0 || zp.Name != name {
			t.Errorf("GetZpool = %+v", zp)
		}
		fs, err := gozfs.CreateFilesystem(name+"/a", map[string]string{"rackflow:test": "x"})
		if err != nil {
			t.Fatalf("CreateFilesystem: %v", err)
		}
		if fs.Type != gozfs.DatasetFilesystem || fs.Mountpoint != filepath.Join(p.Mountpoint, "a") || fs.Avail == 0 {
			t.Errorf("CreateFilesystem = %+v", fs)
		}
		if err := os.WriteFile(filepath.Join(fs.Mountpoint, "f"), []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		snap, err := fs.Snapshot("s1", false)
		if err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		if snap.Type != gozfs.DatasetSnapshot || snap.Name != name+"/a@s1" || snap.Referenced == 0 {
			t.Errorf("Snapshot = %+v", snap)
		}
		clone, err := snap.Clone(name+"/c/one", map[string]string{"rackflow:node": "n1"})
		if err != nil {
			t.Fatalf("Clone: %v", err)
		}
		if clone.Origin != snap.Name {
			t.Errorf("Clone origin = %q, want %q", clone.Origin, snap.Name)
		}
		if b, err := os.ReadFile(filepath.Join(clone.Mountpoint, "f")); err != nil || string(b) != "hello" {
			t.Errorf("clone content = %q, %v", b, err)
		}
		if v, err := clone.GetProperty("rackflow:node"); err != nil || v != "n1" {
			t.Errorf("clone property = %q, %v", v, err)
		}
		snaps, err := gozfs.Snapshots(name)
		if err != nil || len(snaps) != 1 || snaps[0].Name != snap.Name {
			t.Errorf("Snapshots = %v, %v", snaps, err)
		}
		kids, err := fs.Children(0)
		if err != nil || len(kids) != 1 || kids[0].Name != snap.Name {
			t.Errorf("Children = %v, %v", kids, err)
		}
		all, err := gozfs.Datasets(name)
		if err != nil || len(all) != 5 { // pool, a, a@s1, c, c/one
			t.Errorf("Datasets = %d datasets, %v", len(all), err)
		}
		_, err = gozfs.GetDataset(name + "/nope")
		var ze *gozfs.Error
		if !errors.As(err, &ze) || !strings.Contains(ze.Stderr, "does not exist") {
			t.Errorf("GetDataset(missing) error = %v, want go-zfs error saying 'does not exist'", err)
		}
		// zfs-fuse unmounts asynchronously: destroying a freshly mounted
		// dataset reports "dataset is busy" for ~0.1 s.
		for attempt := 1; ; attempt++ {
			err = clone.Destroy(gozfs.DestroyDefault)
			if err == nil || attempt == 5 || !strings.Contains(err.Error(), "busy") {
				break
			}
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("Destroy clone: %v", err)
		}
	})

	t.Run("other calls pass through", func(t *testing.T) {
		out, err := exec.Command("zfs", "list", name).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "NAME") {
			t.Errorf("zfs list (human) = %q, %v", out, err)
		}
		out, err = exec.Command("zpool", "get", "health", name).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ONLINE") {
			t.Errorf("zpool get (human) = %q, %v", out, err)
		}
	})

	t.Run("export and re-import", func(t *testing.T) {
		if err := p.Export(ctx); err != nil {
			t.Fatalf("Export: %v", err)
		}
		if err := p.Export(ctx); err != nil {
			t.Fatalf("second Export: %v", err)
		}
		if _, err := Ensure(ctx, state, name, 0, log); err != nil {
			t.Fatalf("Ensure after export: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(p.Mountpoint, "a", "f")); err != nil || string(b) != "hello" {
			t.Errorf("content after re-import = %q, %v", b, err)
		}
	})

	t.Run("same name, other file", func(t *testing.T) {
		_, err := Ensure(ctx, t.TempDir(), name, 0, log)
		if !errors.Is(err, ErrPoolConflict) {
			t.Errorf("Ensure with another state dir = %v, want ErrPoolConflict", err)
		}
	})

	t.Run("destroy idempotent", func(t *testing.T) {
		if err := p.Destroy(ctx); err != nil {
			t.Fatalf("Destroy: %v", err)
		}
		if err := p.Destroy(ctx); err != nil {
			t.Fatalf("second Destroy: %v", err)
		}
		if _, err := os.Stat(p.File); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pool file after Destroy: %v", err)
		}
	})
}

func TestUnescapeMountinfo(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/tmp/a", "/tmp/a"},
		{`/tmp/a\040b`, "/tmp/a b"},
		{`/x\011y\134z`, "/x\ty\\z"},
		{`/bad\09`, `/bad\09`},
		{`/end\04`, `/end\04`},
	}
	for _, tt := range tests {
		if got := unescapeMountinfo(tt.in); got != tt.want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
