package imagestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackflow/rackflow/dev/zfsfuse"
)

// TestZFSStore runs the shared suite against a real, file-backed zfs-fuse
// pool in a temporary state dir, destroyed at the end.
func TestZFSStore(t *testing.T) {
	if !zfsfuse.Installed() {
		t.Skip("zfs-fuse is not installed (apt-get install zfs-fuse); skipping the ZFS backend test")
	}
	if os.Geteuid() != 0 {
		t.Skip("zfs-fuse needs root; skipping the ZFS backend test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := testLogger(t)
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	pool, err := zfsfuse.Ensure(ctx, t.TempDir(), "rfis"+hex.EncodeToString(b), 256<<20, log)
	if err != nil {
		t.Fatalf("zfsfuse.Ensure: %v", err)
	}
	t.Cleanup(func() {
		if err := pool.Destroy(context.Background()); err != nil {
			t.Errorf("destroying test pool %s: %v", pool.Name, err)
		}
	})

	t.Run("without the shims NewZFS explains", func(t *testing.T) {
		_, err := NewZFS(pool.Name, log)
		if err == nil || !strings.Contains(err.Error(), "dev/zfsfuse") {
			t.Errorf("NewZFS without shims = %v, want an error naming dev/zfsfuse", err)
		}
	})

	t.Setenv("PATH", pool.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	if !ZFSAvailable() {
		t.Fatal("ZFSAvailable() = false with a running zfs-fuse pool")
	}
	z, err := NewZFS(pool.Name, log)
	if err != nil {
		t.Fatalf("NewZFS: %v", err)
	}
	t.Cleanup(func() { os.Remove(z.lockPath) })
	if _, err := NewZFS(pool.Name, log); err != nil {
		t.Fatalf("NewZFS again: %v", err)
	}
	if z.Backend() != "zfs" {
		t.Errorf("Backend = %q", z.Backend())
	}
	for _, bad := range []string{"", "/tank", "tank/", "ta nk", "tank;rm"} {
		if _, err := NewZFS(bad, log); err == nil {
			t.Errorf("NewZFS(%q) succeeded", bad)
		}
	}
	if _, err := NewZFS("nosuchpool", log); err == nil {
		t.Errorf("NewZFS(missing pool) succeeded")
	}

	testStore(t, z, func(t *testing.T) func() {
		// Any zfs or zpool run from now on lands in calls.
		bin := t.TempDir()
		calls := filepath.Join(bin, "calls")
		script := "#!/bin/sh\necho \"$0 $*\" >> '" + calls + "'\nexit 1\n"
		for _, name := range []string{"zfs", "zpool"} {
			if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		t.Setenv("PATH", bin)
		return func() {
			if b, err := os.ReadFile(calls); err == nil {
				t.Errorf("invalid names ran commands:\n%s", b)
			}
		}
	})

	t.Run("layout", func(t *testing.T) {
		props, _, err := zfsGet(ctx, []string{"type", "origin", propImage, propVersion, propDigest, propSize}, false, pool.Name+"/rackflow/roots/n9")
		if !isNotExist(err) {
			t.Errorf("roots/n9 after the suite: %v %v", props, err)
		}
		r, err := z.Clone(ctx, "n7", "alpine", "3.20")
		if err != nil {
			t.Fatal(err)
		}
		name := pool.Name + "/rackflow/roots/n7"
		props, _, err = zfsGet(ctx, []string{"type", "origin", propImage, propVersion, propDigest, propSize}, false, name)
		if err != nil {
			t.Fatal(err)
		}
		p := props[name]
		if p["origin"] != pool.Name+"/rackflow/images/alpine@3.20" || p[propImage] != "alpine" ||
			p[propVersion] != "3.20" || p[propDigest] != r.Digest || p[propSize] != "4096" {
			t.Errorf("root properties = %v", p)
		}
		if r.Dir != filepath.Join(pool.Mountpoint, "rackflow", "roots", "n7") {
			t.Errorf("Root.Dir = %s, want under the pool mountpoint %s", r.Dir, pool.Mountpoint)
		}
		// An unmounted root (say after a daemon restart) is mounted again.
		if _, err := runZFS(ctx, "umount", name); err != nil {
			t.Fatalf("umount: %v", err)
		}
		again, err := z.Root(ctx, "n7")
		if err != nil || again != r {
			t.Fatalf("Root after umount = %+v, %v; want %+v", again, err, r)
		}
		if got, err := os.ReadFile(again.File); err != nil || digest(got) != r.Digest {
			t.Errorf("root file after remount: %d bytes, %v", len(got), err)
		}
		if err := z.DestroyRoot(ctx, "n7"); err != nil {
			t.Fatal(err)
		}
	})
}
