package imagestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	gozfs "github.com/mistifyio/go-zfs/v3"
)

// Clone makes root <pool>/rackflow/roots/<node> a clone of image@version
// with the version's digest and size copied onto it. Idempotent; see Store.
func (z *ZFS) Clone(ctx context.Context, node, image, version string) (Root, error) {
	if err := validateNames(node, image, version); err != nil {
		return Root{}, err
	}
	unlock, err := lockFile(ctx, z.lockPath)
	if err != nil {
		return Root{}, fmt.Errorf("imagestore: %w", err)
	}
	defer unlock()
	if r, err := z.root(ctx, node); err == nil {
		return sameRoot(r, image, version)
	} else if !errors.Is(err, ErrNoRoot) {
		return Root{}, err
	}

	fs := z.images + "/" + image
	snap, err := gozfs.GetDataset(fs + "@" + version)
	if isNotExist(err) {
		if _, ferr := gozfs.GetDataset(fs); isNotExist(ferr) {
			return Root{}, fmt.Errorf("imagestore: %s: %w", image, ErrUnknownImage)
		}
		return Root{}, fmt.Errorf("imagestore: %s@%s: %w", image, version, ErrUnknownVersion)
	}
	if err != nil {
		return Root{}, fmt.Errorf("imagestore: %w", err)
	}
	props, _, err := zfsGet(ctx, []string{"creation", propDigest, propSize}, false, snap.Name)
	if err != nil {
		return Root{}, fmt.Errorf("imagestore: %w", err)
	}
	v, err := versionFromProps(version, props[snap.Name])
	if err != nil {
		return Root{}, fmt.Errorf("imagestore: snapshot %s: %w", snap.Name, err)
	}
	_, err = snap.Clone(z.roots+"/"+node, map[string]string{
		propImage:   image,
		propVersion: version,
		propDigest:  v.Digest,
		propSize:    strconv.FormatInt(v.Size, 10),
	})
	if err != nil && !isExist(err) { // exists: another process won; compare below
		return Root{}, fmt.Errorf("imagestore: clone %s for %s: %w", snap.Name, node, err)
	}
	r, err := z.root(ctx, node)
	if err != nil {
		return Root{}, err
	}
	if _, err := sameRoot(r, image, version); err != nil {
		return Root{}, err
	}
	z.log.Info("root cloned", "node", node, "image", image, "version", version, "dir", r.Dir)
	return r, nil
}

// sameRoot returns r if it is a root of image@version, else ErrRootConflict.
func sameRoot(r Root, image, version string) (Root, error) {
	if r.Image == image && r.Version == version {
		return r, nil
	}
	return Root{}, fmt.Errorf("imagestore: node %s has %s@%s, not %s@%s: %w",
		r.Node, r.Image, r.Version, image, version, ErrRootConflict)
}

// Root returns node's root, mounting it if needed. Errors: ErrInvalidName,
// ErrNoRoot, ErrRootConflict (a dataset that is not a rackflow root is in
// the way).
func (z *ZFS) Root(ctx context.Context, node string) (Root, error) {
	if err := validateNames(node); err != nil {
		return Root{}, err
	}
	return z.root(ctx, node)
}

func (z *ZFS) root(ctx context.Context, node string) (Root, error) {
	name := z.roots + "/" + node
	props, _, err := zfsGet(ctx, []string{propImage, propVersion, propDigest, propSize}, false, name)
	if isNotExist(err) {
		return Root{}, fmt.Errorf("imagestore: %s: %w", node, ErrNoRoot)
	}
	if err != nil {
		return Root{}, fmt.Errorf("imagestore: root %s: %w", node, err)
	}
	p := props[name]
	image, version := p[propImage], p[propVersion]
	if ValidateName(image) != nil || ValidateName(version) != nil {
		return Root{}, fmt.Errorf("imagestore: dataset %s has no valid %s/%s: %w", name, propImage, propVersion, ErrRootConflict)
	}
	digest, size, err := digestSize(p)
	if err != nil {
		return Root{}, fmt.Errorf("imagestore: root %s: %w", name, err)
	}
	dir, err := mountpoint(ctx, name)
	if err != nil {
		return Root{}, fmt.Errorf("imagestore: %w", err)
	}
	return Root{
		Node: node, Image: image, Version: version,
		Dir: dir, File: filepath.Join(dir, ImageFile),
		Digest: digest, Size: size,
	}, nil
}

// DestroyRoot destroys node's root dataset (and any snapshots of it),
// retrying while zfs reports it busy. Idempotent.
func (z *ZFS) DestroyRoot(ctx context.Context, node string) error {
	if err := validateNames(node); err != nil {
		return err
	}
	unlock, err := lockFile(ctx, z.lockPath)
	if err != nil {
		return fmt.Errorf("imagestore: %w", err)
	}
	defer unlock()
	ds, err := gozfs.GetDataset(z.roots + "/" + node)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("imagestore: root %s: %w", node, err)
	}
	for attempt := 0; ; attempt++ {
		err = ds.Destroy(gozfs.DestroyRecursive)
		if err == nil || isNotExist(err) {
			z.log.Info("root destroyed", "node", node)
			return nil
		}
		if !isBusy(err) || attempt == len(destroyBackoff) {
			return fmt.Errorf("imagestore: destroy root %s: %w", node, err)
		}
		if err := sleepCtx(ctx, destroyBackoff[attempt]); err != nil {
			return fmt.Errorf("imagestore: destroy root %s: %w", node, err)
		}
	}
}
