package imagestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// badNames must all be refused with ErrInvalidName.
var badNames = []string{
	"../x", "A", "-x", "a b", "a;rm", "", ".x", "_x", "x/y", "a@b", "x\n",
	"a$(id)", "Debian", "é", strings.Repeat("a", 64),
}

func TestValidateName(t *testing.T) {
	good := []string{"a", "0", "debian-12.5_x", "r01n01", "v1..2", strings.Repeat("a", 63)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	for _, n := range badNames {
		if err := ValidateName(n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", n, err)
		}
	}
}

// testLogger logs through the test's output (shown with -v or on failure).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// payload returns n deterministic pseudo-random bytes.
func payload(seed byte, n int) []byte {
	var key [32]byte
	key[0] = seed
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// noRead fails the test if anything reads it.
type noRead struct{ t *testing.T }

func (r noRead) Read([]byte) (int, error) {
	r.t.Error("content was read although the call had to fail first")
	return 0, io.EOF
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error = %v, want %v", what, err, want)
	}
}

// testStore runs the behaviour both backends share. guard is called before
// the invalid-name calls; the function it returns checks that those calls
// did nothing (ran no command, touched no file).
func testStore(t *testing.T, s Store, guard func(t *testing.T) func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	deb1 := payload(1, 1<<20+123) // crosses block boundaries
	deb2 := payload(2, 300_000)
	alp := payload(3, 4096)

	t.Run("invalid names rejected before any command", func(t *testing.T) {
		verify := guard(t)
		for _, bad := range badNames {
			_, err := s.CreateVersion(ctx, bad, "v1", noRead{t})
			wantErr(t, "CreateVersion(image="+bad+")", err, ErrInvalidName)
			_, err = s.CreateVersion(ctx, "debian", bad, noRead{t})
			wantErr(t, "CreateVersion(version="+bad+")", err, ErrInvalidName)
			_, err = s.Clone(ctx, bad, "debian", "v1")
			wantErr(t, "Clone(node="+bad+")", err, ErrInvalidName)
			_, err = s.Clone(ctx, "n1", bad, "v1")
			wantErr(t, "Clone(image="+bad+")", err, ErrInvalidName)
			_, err = s.Clone(ctx, "n1", "debian", bad)
			wantErr(t, "Clone(version="+bad+")", err, ErrInvalidName)
			_, err = s.Root(ctx, bad)
			wantErr(t, "Root("+bad+")", err, ErrInvalidName)
			wantErr(t, "DestroyRoot("+bad+")", s.DestroyRoot(ctx, bad), ErrInvalidName)
		}
		verify()
	})

	t.Run("create versions", func(t *testing.T) {
		for _, c := range []struct {
			image, version string
			data           []byte
		}{{"debian", "v2", deb2}, {"debian", "v1", deb1}, {"alpine", "3.20", alp}} {
			v, err := s.CreateVersion(ctx, c.image, c.version, bytes.NewReader(c.data))
			if err != nil {
				t.Fatalf("CreateVersion(%s, %s): %v", c.image, c.version, err)
			}
			if v.Name != c.version || v.Digest != digest(c.data) || v.Size != int64(len(c.data)) || v.Created.IsZero() {
				t.Errorf("CreateVersion(%s, %s) = %+v, want digest %s size %d", c.image, c.version, v, digest(c.data), len(c.data))
			}
		}
		_, err := s.CreateVersion(ctx, "debian", "v1", noRead{t})
		wantErr(t, "CreateVersion(existing)", err, ErrVersionExists)
	})

	wantImages := []Image{
		{Name: "alpine", Versions: []Version{{Name: "3.20", Digest: digest(alp), Size: int64(len(alp))}}},
		{Name: "debian", Versions: []Version{
			{Name: "v1", Digest: digest(deb1), Size: int64(len(deb1))},
			{Name: "v2", Digest: digest(deb2), Size: int64(len(deb2))},
		}},
	}
	checkImages := func(t *testing.T) {
		t.Helper()
		got, err := s.Images(ctx)
		if err != nil {
			t.Fatalf("Images: %v", err)
		}
		if len(got) != len(wantImages) {
			t.Fatalf("Images = %+v, want %+v", got, wantImages)
		}
		for i, img := range got {
			w := wantImages[i]
			if img.Name != w.Name || len(img.Versions) != len(w.Versions) {
				t.Fatalf("Images[%d] = %+v, want %+v", i, img, w)
			}
			for j, v := range img.Versions {
				wv := w.Versions[j]
				if v.Name != wv.Name || v.Digest != wv.Digest || v.Size != wv.Size || v.Created.IsZero() {
					t.Errorf("Images[%d].Versions[%d] = %+v, want %+v (and a creation time)", i, j, v, wv)
				}
			}
		}
	}
	t.Run("images sorted with digests", checkImages)

	var n1 Root
	t.Run("clone", func(t *testing.T) {
		r, err := s.Clone(ctx, "n1", "debian", "v1")
		if err != nil {
			t.Fatalf("Clone: %v", err)
		}
		if r.Node != "n1" || r.Image != "debian" || r.Version != "v1" || r.Digest != digest(deb1) ||
			r.Size != int64(len(deb1)) || r.Dir == "" || r.File != r.Dir+"/image.raw" {
			t.Errorf("Clone = %+v", r)
		}
		got, err := os.ReadFile(r.File)
		if err != nil || !bytes.Equal(got, deb1) {
			t.Fatalf("root file: %d bytes (digest %s), %v; want the version's %d bytes", len(got), digest(got), err, len(deb1))
		}
		n1 = r
	})

	t.Run("clone is idempotent", func(t *testing.T) {
		r, err := s.Clone(ctx, "n1", "debian", "v1")
		if err != nil || r != n1 {
			t.Errorf("second Clone = %+v, %v; want %+v", r, err, n1)
		}
		r, err = s.Root(ctx, "n1")
		if err != nil || r != n1 {
			t.Errorf("Root = %+v, %v; want %+v", r, err, n1)
		}
	})

	t.Run("concurrent clones agree", func(t *testing.T) {
		var wg sync.WaitGroup
		roots := make([]Root, 4)
		errs := make([]error, 4)
		for i := range roots {
			wg.Go(func() { roots[i], errs[i] = s.Clone(ctx, "n4", "debian", "v2") })
		}
		wg.Wait()
		for i := range roots {
			if errs[i] != nil || roots[i] != roots[0] || roots[i].Digest != digest(deb2) {
				t.Errorf("Clone #%d = %+v, %v", i, roots[i], errs[i])
			}
		}
	})

	t.Run("conflicting clone", func(t *testing.T) {
		_, err := s.Clone(ctx, "n1", "debian", "v2")
		wantErr(t, "Clone(other version)", err, ErrRootConflict)
		_, err = s.Clone(ctx, "n1", "alpine", "3.20")
		wantErr(t, "Clone(other image)", err, ErrRootConflict)
		if r, err := s.Root(ctx, "n1"); err != nil || r != n1 {
			t.Errorf("Root after conflicts = %+v, %v; want %+v", r, err, n1)
		}
	})

	t.Run("unknown image, version, root", func(t *testing.T) {
		_, err := s.Clone(ctx, "n2", "nope", "v1")
		wantErr(t, "Clone(unknown image)", err, ErrUnknownImage)
		_, err = s.Clone(ctx, "n2", "debian", "v9")
		wantErr(t, "Clone(unknown version)", err, ErrUnknownVersion)
		_, err = s.Root(ctx, "n2")
		wantErr(t, "Root(n2)", err, ErrNoRoot)
	})

	t.Run("root is writable and does not change the version", func(t *testing.T) {
		garbage := payload(99, 5000)
		if err := os.WriteFile(n1.File, garbage, 0o644); err != nil {
			t.Fatalf("writing the root: %v", err)
		}
		if err := os.WriteFile(n1.Dir+"/extra", []byte("x"), 0o644); err != nil {
			t.Fatalf("adding a file to the root: %v", err)
		}
		if got, err := os.ReadFile(n1.File); err != nil || !bytes.Equal(got, garbage) {
			t.Fatalf("root file after write: %d bytes, %v", len(got), err)
		}
		r, err := s.Clone(ctx, "n3", "debian", "v1")
		if err != nil {
			t.Fatalf("Clone n3: %v", err)
		}
		if got, err := os.ReadFile(r.File); err != nil || !bytes.Equal(got, deb1) {
			t.Errorf("fresh clone after writing another root: %d bytes (digest %s), %v; want the original", len(got), digest(got), err)
		}
		checkImages(t)
	})

	t.Run("destroy is idempotent", func(t *testing.T) {
		for _, node := range []string{"n1", "n1", "n9"} {
			if err := s.DestroyRoot(ctx, node); err != nil {
				t.Fatalf("DestroyRoot(%s): %v", node, err)
			}
		}
		_, err := s.Root(ctx, "n1")
		wantErr(t, "Root after destroy", err, ErrNoRoot)
		if _, err := os.Stat(n1.File); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("root file after destroy: %v, want it gone", err)
		}
		r, err := s.Clone(ctx, "n1", "debian", "v2")
		if err != nil {
			t.Fatalf("Clone after destroy: %v", err)
		}
		if got, err := os.ReadFile(r.File); err != nil || !bytes.Equal(got, deb2) {
			t.Errorf("re-cloned root: %d bytes, %v; want v2", len(got), err)
		}
		for _, node := range []string{"n1", "n3", "n4"} {
			if err := s.DestroyRoot(ctx, node); err != nil {
				t.Errorf("DestroyRoot(%s): %v", node, err)
			}
		}
		checkImages(t)
	})
}
