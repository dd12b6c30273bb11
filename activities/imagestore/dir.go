package imagestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Dir is the backend for machines without ZFS, under one root directory:
//
//	images/<image>/<version>/image.raw     read-only (0444; directory 0555)
//	images/<image>/<version>/version.json  {"image","version","digest","size","created"}
//	roots/<node>/image.raw                 writable copy (reflink where possible)
//	root-meta/<node>.json                  {"node","image","version","digest","size","created"}
//	.lock                                  flock serialising changes
//
// A version appears by renaming a complete staging directory into place; a
// root exists once its metadata file is written (atomically, after the
// copy), and stops existing when that file is removed, so readers never
// see a half-made version or root. Root metadata lives outside roots/<node>
// so the exported directory holds only image.raw. Safe for concurrent use
// by goroutines and processes.
type Dir struct {
	base     string
	images   string // <root>/images
	roots    string // <root>/roots
	rootMeta string // <root>/root-meta
	log      *slog.Logger
}

const (
	versionMetaFile = "version.json"
	lockPoll        = 20 * time.Millisecond
)

// versionMeta is images/<image>/<version>/version.json.
type versionMeta struct {
	Image   string    `json:"image"`
	Version string    `json:"version"`
	Digest  string    `json:"digest"` // "sha256:<hex>"
	Size    int64     `json:"size"`   // bytes
	Created time.Time `json:"created"`
}

// rootMeta is root-meta/<node>.json.
type rootMeta struct {
	Node    string    `json:"node"`
	Image   string    `json:"image"`
	Version string    `json:"version"`
	Digest  string    `json:"digest"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"` // when the root was cloned
}

// NewDir opens (creating if needed) a Dir store rooted at root. A nil log
// discards.
func NewDir(root string, log *slog.Logger) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("imagestore: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dir{
		base:     abs,
		images:   filepath.Join(abs, "images"),
		roots:    filepath.Join(abs, "roots"),
		rootMeta: filepath.Join(abs, "root-meta"),
		log:      log,
	}
	for _, dir := range []string{d.images, d.roots, d.rootMeta} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("imagestore: %w", err)
		}
	}
	return d, nil
}

// Backend returns "dir".
func (d *Dir) Backend() string { return "dir" }

func (d *Dir) lock(ctx context.Context) (func(), error) {
	unlock, err := lockFile(ctx, filepath.Join(d.base, ".lock"))
	if err != nil {
		return nil, fmt.Errorf("imagestore: %w", err)
	}
	return unlock, nil
}

// Images lists images/<image>/<version> directories. Entries that are not
// valid names (staging directories) are ignored; a version directory with
// unreadable metadata is skipped and logged.
func (d *Dir) Images(ctx context.Context) ([]Image, error) {
	entries, err := os.ReadDir(d.images)
	if err != nil {
		return nil, fmt.Errorf("imagestore: list images: %w", err)
	}
	byName := map[string]*Image{}
	for _, e := range entries {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img := &Image{Name: e.Name(), Versions: []Version{}}
		byName[img.Name] = img
		vents, err := os.ReadDir(filepath.Join(d.images, img.Name))
		if err != nil {
			return nil, fmt.Errorf("imagestore: list versions of %s: %w", img.Name, err)
		}
		for _, ve := range vents {
			if !ve.IsDir() || ValidateName(ve.Name()) != nil {
				continue
			}
			m, err := d.readVersion(img.Name, ve.Name())
			if err != nil {
				d.log.Warn("skipping unreadable image version", "image", img.Name, "version", ve.Name(), "err", err)
				continue
			}
			img.Versions = append(img.Versions, Version{Name: m.Version, Created: m.Created, Digest: m.Digest, Size: m.Size})
		}
	}
	return sortedImages(byName), nil
}

// readVersion reads and checks a version's metadata.
func (d *Dir) readVersion(image, version string) (versionMeta, error) {
	var m versionMeta
	if err := readJSON(filepath.Join(d.images, image, version, versionMetaFile), &m); err != nil {
		return m, err
	}
	if m.Image != image || m.Version != version || !digestRE.MatchString(m.Digest) || m.Size < 0 {
		return m, fmt.Errorf("%s@%s: inconsistent metadata %+v", image, version, m)
	}
	return m, nil
}

// CreateVersion writes content and its metadata into a staging directory
// under images/<image>/, makes it read-only and renames it to <version>.
// Errors: ErrInvalidName, ErrVersionExists, I/O failures.
func (d *Dir) CreateVersion(ctx context.Context, image, version string, content io.Reader) (Version, error) {
	if err := validateNames(image, version); err != nil {
		return Version{}, err
	}
	unlock, err := d.lock(ctx)
	if err != nil {
		return Version{}, err
	}
	defer unlock()

	imageDir := filepath.Join(d.images, image)
	final := filepath.Join(imageDir, version)
	if _, err := os.Lstat(final); err == nil {
		return Version{}, fmt.Errorf("imagestore: %s@%s: %w", image, version, ErrVersionExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	if err := os.MkdirAll(imageDir, 0o755); err != nil {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	stage, err := os.MkdirTemp(imageDir, ".stage-")
	if err != nil {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	published := false
	defer func() {
		if !published {
			_ = removeTree(stage)
		}
	}()

	digest, size, err := writeFile(ctx, filepath.Join(stage, ImageFile), content)
	if err != nil {
		return Version{}, fmt.Errorf("imagestore: writing %s@%s: %w", image, version, err)
	}
	m := versionMeta{Image: image, Version: version, Digest: digest, Size: size, Created: time.Now().UTC()}
	if err := writeJSONAtomic(filepath.Join(stage, versionMetaFile), m, 0o444); err != nil {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	if err := os.Chmod(filepath.Join(stage, ImageFile), 0o444); err != nil {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	if err := os.Chmod(stage, 0o555); err != nil {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	if err := renameNoReplace(stage, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Version{}, fmt.Errorf("imagestore: %s@%s: %w", image, version, ErrVersionExists)
		}
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	published = true
	if err := syncDir(imageDir); err != nil {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	d.log.Info("image version created", "image", image, "version", version, "digest", digest, "bytes", size)
	return Version{Name: version, Created: m.Created, Digest: digest, Size: size}, nil
}

// Clone copies image@version's image.raw into roots/<node>/ (reflink where
// the filesystem can) and then records root-meta/<node>.json. Idempotent;
// see Store.
func (d *Dir) Clone(ctx context.Context, node, image, version string) (Root, error) {
	if err := validateNames(node, image, version); err != nil {
		return Root{}, err
	}
	unlock, err := d.lock(ctx)
	if err != nil {
		return Root{}, err
	}
	defer unlock()
	if r, err := d.root(node); err == nil {
		return sameRoot(r, image, version)
	} else if !errors.Is(err, ErrNoRoot) {
		return Root{}, err
	}

	v, err := d.readVersion(image, version)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(d.images, image)); errors.Is(serr, fs.ErrNotExist) {
			return Root{}, fmt.Errorf("imagestore: %s: %w", image, ErrUnknownImage)
		}
		return Root{}, fmt.Errorf("imagestore: %s@%s: %w", image, version, ErrUnknownVersion)
	}
	if err != nil {
		return Root{}, fmt.Errorf("imagestore: %w", err)
	}

	dir := filepath.Join(d.roots, node)
	// Without metadata, anything at dir is left from an interrupted Clone
	// or DestroyRoot.
	if err := removeTree(dir); err != nil {
		return Root{}, fmt.Errorf("imagestore: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return Root{}, fmt.Errorf("imagestore: %w", err)
	}
	reflinked, err := copyFile(ctx, filepath.Join(d.images, image, version, ImageFile), filepath.Join(dir, ImageFile))
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = removeTree(dir)
		return Root{}, fmt.Errorf("imagestore: copying %s@%s for %s: %w", image, version, node, err)
	}
	m := rootMeta{Node: node, Image: image, Version: version, Digest: v.Digest, Size: v.Size, Created: time.Now().UTC()}
	if err := writeJSONAtomic(d.metaPath(node), m, 0o644); err != nil {
		_ = removeTree(dir)
		return Root{}, fmt.Errorf("imagestore: %w", err)
	}
	d.log.Info("root cloned", "node", node, "image", image, "version", version, "dir", dir, "reflink", reflinked)
	return d.rootFrom(m), nil
}

func (d *Dir) metaPath(node string) string { return filepath.Join(d.rootMeta, node+".json") }

// Root returns node's root. Errors: ErrInvalidName, ErrNoRoot.
func (d *Dir) Root(ctx context.Context, node string) (Root, error) {
	if err := validateNames(node); err != nil {
		return Root{}, err
	}
	return d.root(node)
}

func (d *Dir) root(node string) (Root, error) {
	var m rootMeta
	err := readJSON(d.metaPath(node), &m)
	if errors.Is(err, fs.ErrNotExist) {
		return Root{}, fmt.Errorf("imagestore: %s: %w", node, ErrNoRoot)
	}
	if err != nil {
		return Root{}, fmt.Errorf("imagestore: root %s: %w", node, err)
	}
	if m.Node != node || ValidateName(m.Image) != nil || ValidateName(m.Version) != nil || !digestRE.MatchString(m.Digest) {
		return Root{}, fmt.Errorf("imagestore: root %s: inconsistent metadata %+v", node, m)
	}
	return d.rootFrom(m), nil
}

func (d *Dir) rootFrom(m rootMeta) Root {
	dir := filepath.Join(d.roots, m.Node)
	return Root{
		Node: m.Node, Image: m.Image, Version: m.Version,
		Dir: dir, File: filepath.Join(dir, ImageFile),
		Digest: m.Digest, Size: m.Size,
	}
}

// DestroyRoot removes root-meta/<node>.json (the root is gone from then
// on), then roots/<node>/. Idempotent.
func (d *Dir) DestroyRoot(ctx context.Context, node string) error {
	if err := validateNames(node); err != nil {
		return err
	}
	unlock, err := d.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.Remove(d.metaPath(node)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("imagestore: destroy root %s: %w", node, err)
	}
	if err := syncDir(d.rootMeta); err != nil {
		return fmt.Errorf("imagestore: destroy root %s: %w", node, err)
	}
	if err := removeTree(filepath.Join(d.roots, node)); err != nil {
		return fmt.Errorf("imagestore: destroy root %s: %w", node, err)
	}
	d.log.Info("root destroyed", "node", node)
	return nil
}
