package imagestore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	gozfs "github.com/mistifyio/go-zfs/v3"
	"golang.org/x/sys/unix"
)

// ZFS is the ZFS backend:
//
//	<pool>/rackflow/images/<image>            filesystem holding image.raw
//	<pool>/rackflow/images/<image>@<version>  version snapshot; rackflow:digest, rackflow:size
//	<pool>/rackflow/roots/<node>              root, a clone of a version; rackflow:image,
//	                                          rackflow:version, rackflow:digest, rackflow:size
//
// It runs zfs from PATH (go-zfs). On zfs-fuse (dev/CI) the dev/zfsfuse
// shims must come first on PATH. Safe for concurrent use: changes are
// serialised by an flock on /run/lock/rackflow-imagestore-<pool>.lock (or
// the same name in os.TempDir()), across goroutines and processes.
type ZFS struct {
	pool     string // dataset prefix root, e.g. "tank"
	images   string // <pool>/rackflow/images
	roots    string // <pool>/rackflow/roots
	lockPath string
	log      *slog.Logger
}

// destroyBackoff: zfs-fuse unmounts asynchronously, and destroying a
// freshly mounted or just unmounted dataset reports "dataset is busy" for
// about 0.1 s, and for seconds on a loaded machine (seen in CI: still busy
// after 1.85 s); DestroyRoot retries after these pauses, ~11 s in all.
var destroyBackoff = []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second}

var datasetRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*(/[A-Za-z0-9_.:-]+)*$`)

// NewZFS opens the ZFS backend under the existing dataset pool (a pool
// name such as "tank", or a dataset under it), creating
// <pool>/rackflow/images and <pool>/rackflow/roots if missing. A nil log
// discards. Errors: an invalid or missing pool dataset, zfs failures.
func NewZFS(pool string, log *slog.Logger) (*ZFS, error) {
	if !datasetRE.MatchString(pool) {
		return nil, fmt.Errorf("imagestore: invalid ZFS dataset %q", pool)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lockDir := "/run/lock"
	if unix.Access(lockDir, unix.W_OK) != nil {
		lockDir = os.TempDir()
	}
	z := &ZFS{
		pool:     pool,
		images:   pool + "/rackflow/images",
		roots:    pool + "/rackflow/roots",
		lockPath: filepath.Join(lockDir, "rackflow-imagestore-"+strings.ReplaceAll(pool, "/", "_")+".lock"),
		log:      log,
	}
	if _, err := gozfs.GetDataset(pool); err != nil {
		if strings.Contains(zfsStderr(err), "invalid option 'p'") {
			return nil, fmt.Errorf("imagestore: zfs has no `list -p` (zfs-fuse without the dev/zfsfuse shims first on PATH): %w", err)
		}
		return nil, fmt.Errorf("imagestore: pool dataset %s: %w", pool, err)
	}
	for _, ds := range []string{pool + "/rackflow", z.images, z.roots} {
		if err := ensureFilesystem(ds); err != nil {
			return nil, fmt.Errorf("imagestore: %w", err)
		}
	}
	return z, nil
}

// ensureFilesystem creates filesystem name unless it exists.
func ensureFilesystem(name string) error {
	_, err := gozfs.GetDataset(name)
	if err == nil || !isNotExist(err) {
		return err
	}
	if _, err := gozfs.CreateFilesystem(name, nil); err != nil && !isExist(err) {
		return err
	}
	return nil
}

// Backend returns "zfs".
func (z *ZFS) Backend() string { return "zfs" }

// Images lists images and versions in one `zfs get -r`. Snapshots without
// a valid digest or size (not made by CreateVersion) are skipped and logged.
func (z *ZFS) Images(ctx context.Context) ([]Image, error) {
	props, order, err := zfsGet(ctx, []string{"creation", propDigest, propSize}, true, z.images)
	if err != nil {
		return nil, fmt.Errorf("imagestore: list images: %w", err)
	}
	byName := map[string]*Image{}
	add := func(name string) *Image {
		if byName[name] == nil {
			byName[name] = &Image{Name: name, Versions: []Version{}}
		}
		return byName[name]
	}
	for _, ds := range order {
		rel, ok := strings.CutPrefix(ds, z.images+"/")
		if !ok {
			continue
		}
		image, version, isSnap := strings.Cut(rel, "@")
		if ValidateName(image) != nil {
			continue
		}
		if !isSnap {
			add(image)
			continue
		}
		if ValidateName(version) != nil {
			continue
		}
		v, err := versionFromProps(version, props[ds])
		if err != nil {
			z.log.Warn("skipping snapshot that is not an image version", "snapshot", ds, "err", err)
			continue
		}
		img := add(image)
		img.Versions = append(img.Versions, v)
	}
	return sortedImages(byName), nil
}

// versionFromProps builds a Version from a snapshot's properties.
func versionFromProps(name string, p map[string]string) (Version, error) {
	digest, size, err := digestSize(p)
	if err != nil {
		return Version{}, err
	}
	created, err := strconv.ParseInt(p["creation"], 10, 64)
	if err != nil {
		return Version{}, fmt.Errorf("creation is %q", p["creation"])
	}
	return Version{Name: name, Created: time.Unix(created, 0).UTC(), Digest: digest, Size: size}, nil
}

// digestSize reads and checks rackflow:digest and rackflow:size.
func digestSize(p map[string]string) (string, int64, error) {
	digest := p[propDigest]
	if !digestRE.MatchString(digest) {
		return "", 0, fmt.Errorf("%s is %q", propDigest, digest)
	}
	size, err := strconv.ParseInt(p[propSize], 10, 64)
	if err != nil || size < 0 {
		return "", 0, fmt.Errorf("%s is %q", propSize, p[propSize])
	}
	return digest, size, nil
}

// sortedImages returns the images sorted by name, versions sorted by name.
func sortedImages(byName map[string]*Image) []Image {
	out := make([]Image, 0, len(byName))
	for _, img := range byName {
		sort.Slice(img.Versions, func(i, j int) bool { return img.Versions[i].Name < img.Versions[j].Name })
		out = append(out, *img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// CreateVersion writes content to image.raw in the image's filesystem
// (created if missing), hashing it on the way, then takes snapshot
// @version carrying rackflow:digest and rackflow:size in the same command.
// Errors: ErrInvalidName, ErrVersionExists, I/O and zfs failures.
func (z *ZFS) CreateVersion(ctx context.Context, image, version string, content io.Reader) (Version, error) {
	if err := validateNames(image, version); err != nil {
		return Version{}, err
	}
	unlock, err := lockFile(ctx, z.lockPath)
	if err != nil {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	defer unlock()
	fs := z.images + "/" + image
	snap := fs + "@" + version
	if _, err := gozfs.GetDataset(snap); err == nil {
		return Version{}, fmt.Errorf("imagestore: %s@%s: %w", image, version, ErrVersionExists)
	} else if !isNotExist(err) {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	if err := ensureFilesystem(fs); err != nil {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	dir, err := mountpoint(ctx, fs)
	if err != nil {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	digest, size, err := writeFile(ctx, filepath.Join(dir, ImageFile), content)
	if err != nil {
		return Version{}, fmt.Errorf("imagestore: writing %s@%s: %w", image, version, err)
	}
	_, err = runZFS(ctx, "snapshot",
		"-o", propDigest+"="+digest,
		"-o", propSize+"="+strconv.FormatInt(size, 10),
		snap)
	if isExist(err) {
		return Version{}, fmt.Errorf("imagestore: %s@%s: %w", image, version, ErrVersionExists)
	}
	if err != nil {
		return Version{}, fmt.Errorf("imagestore: snapshot %s: %w", snap, err)
	}
	props, _, err := zfsGet(ctx, []string{"creation", propDigest, propSize}, false, snap)
	if err != nil {
		return Version{}, fmt.Errorf("imagestore: %w", err)
	}
	v, err := versionFromProps(version, props[snap])
	if err != nil {
		return Version{}, fmt.Errorf("imagestore: snapshot %s: %w", snap, err)
	}
	z.log.Info("image version created", "image", image, "version", version, "digest", digest, "bytes", size)
	return v, nil
}

// writeFile replaces path with content, fsyncs it, and returns its digest
// and size.
func writeFile(ctx context.Context, path string, content io.Reader) (string, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", 0, err
	}
	digest, size, err := writeContent(ctx, f, content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return digest, size, err
}

// mountpoint returns where filesystem name is mounted, mounting it first
// if needed (after a zfs-fuse daemon restart, say).
func mountpoint(ctx context.Context, name string) (string, error) {
	props, _, err := zfsGet(ctx, []string{"mountpoint", "mounted"}, false, name)
	if err != nil {
		return "", err
	}
	mp := props[name]["mountpoint"]
	if !filepath.IsAbs(mp) {
		return "", fmt.Errorf("%s has mountpoint %q, want a path", name, mp)
	}
	if props[name]["mounted"] != "yes" {
		ds := &gozfs.Dataset{Name: name, Type: gozfs.DatasetFilesystem}
		if _, err := ds.Mount(false, nil); err != nil {
			return "", fmt.Errorf("mount %s: %w", name, err)
		}
	}
	return mp, nil
}
