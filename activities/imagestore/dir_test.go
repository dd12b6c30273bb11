package imagestore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// newTestDir returns a Dir store in a temporary directory that is removed
// afterwards even though versions are read-only.
func newTestDir(t *testing.T) (*Dir, string) {
	root := t.TempDir()
	t.Cleanup(func() { _ = removeTree(root) }) // runs before TempDir's own cleanup
	d, err := NewDir(root, testLogger(t))
	if err != nil {
		t.Fatalf("NewDir: %v", err)
	}
	return d, root
}

// tree lists every path under root with its mode.
func tree(t *testing.T, root string) []string {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, p+" "+info.Mode().String())
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

func TestDirStore(t *testing.T) {
	d, root := newTestDir(t)
	if d.Backend() != "dir" {
		t.Errorf("Backend = %q", d.Backend())
	}
	testStore(t, d, func(t *testing.T) func() {
		before := tree(t, root)
		return func() {
			if after := tree(t, root); !slices.Equal(before, after) {
				t.Errorf("invalid names changed the store:\nbefore %q\nafter  %q", before, after)
			}
		}
	})

	t.Run("versions are read-only", func(t *testing.T) {
		for _, p := range []string{"images/debian/v1", "images/debian/v1/image.raw", "images/debian/v1/version.json"} {
			st, err := os.Stat(filepath.Join(root, p))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm()&0o222 != 0 {
				t.Errorf("%s mode %v, want no write bits", p, st.Mode())
			}
		}
	})
}

func TestDirLeftovers(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	data := payload(7, 10_000)
	if _, err := d.CreateVersion(ctx, "img", "v1", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// An interrupted CreateVersion leaves a staging dir; an interrupted
	// Clone or DestroyRoot leaves roots/<node> without metadata.
	if err := os.MkdirAll(filepath.Join(root, "images", "img", ".stage-123"), 0o755); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(root, "roots", "n5")
	if err := os.MkdirAll(orphan, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan, "junk"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	imgs, err := d.Images(ctx)
	if err != nil || len(imgs) != 1 || len(imgs[0].Versions) != 1 || imgs[0].Versions[0].Digest != digest(data) {
		t.Fatalf("Images = %+v, %v; want img with v1 only", imgs, err)
	}
	if _, err := d.Root(ctx, "n5"); !errors.Is(err, ErrNoRoot) {
		t.Fatalf("Root(orphan) = %v, want ErrNoRoot", err)
	}
	r, err := d.Clone(ctx, "n5", "img", "v1")
	if err != nil {
		t.Fatalf("Clone over orphan: %v", err)
	}
	entries, err := os.ReadDir(r.Dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != ImageFile {
		t.Errorf("root dir entries = %v, %v; want only %s", entries, err, ImageFile)
	}
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	data := payload(5, copyChunk+4097) // more than one chunk
	if err := os.WriteFile(src, data, 0o444); err != nil {
		t.Fatal(err)
	}
	reflinked, err := copyFile(context.Background(), src, dst)
	if err != nil {
		t.Fatalf("copyFile: %v", err)
	}
	t.Logf("reflinked: %v", reflinked)
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("copy: %d bytes, %v; want %d", len(got), err, len(data))
	}
	if _, err := copyFile(context.Background(), src, dst); !errors.Is(err, fs.ErrExist) {
		t.Errorf("copyFile onto an existing file = %v, want ErrExist", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := copyFile(ctx, src, filepath.Join(dir, "dst2")); err == nil && !reflinked {
		t.Errorf("copyFile with a cancelled context succeeded")
	}
}
