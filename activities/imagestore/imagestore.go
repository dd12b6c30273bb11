// Package imagestore keeps golden disk images and per-node writable roots.
//
// An image is a named series of versions. A version is read-only and holds
// one raw disk image file, image.raw, whose sha256 is computed once, when
// the version is created. A root is a writable copy of one version for one
// node; netboot exports Root.Dir to the node, which downloads Root.File.
//
// Two backends implement [Store]:
//
//   - [ZFS] (go-zfs): image <pool>/rackflow/images/<image> with version
//     snapshots @<version>, roots are clones <pool>/rackflow/roots/<node>;
//   - [Dir]: plain directories, roots copied with a reflink where the
//     filesystem can, for machines without ZFS.
//
// Image, version and node names are checked against [ValidateName] before
// any path or command is built.
package imagestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"time"
)

// Image is a golden image and its versions, sorted by name (byte order).
type Image struct {
	Name     string
	Versions []Version
}

// Version is one read-only version of an image.
type Version struct {
	Name    string
	Created time.Time // when the version was created (ZFS: whole seconds)
	Digest  string    // "sha256:<64 lower-case hex>" of image.raw
	Size    int64     // bytes of image.raw
}

// Root is a node's writable copy of one image version.
type Root struct {
	Node, Image, Version string
	Dir                  string // directory holding the root's files (ZFS mountpoint / plain dir)
	File                 string // the image artifact nodes download: Dir + "/image.raw"
	Digest               string // "sha256:<hex>" of File, recorded when the version was created
	Size                 int64  // bytes of File
}

// ImageFile is the name of the one file of a version and of a root.
const ImageFile = "image.raw"

// Errors, returned wrapped; test with errors.Is.
var (
	ErrInvalidName    = errors.New("invalid name: want [a-z0-9][a-z0-9._-]*, at most 63 characters")
	ErrUnknownImage   = errors.New("unknown image")
	ErrUnknownVersion = errors.New("unknown image version")
	ErrNoRoot         = errors.New("no root for this node")
	ErrRootConflict   = errors.New("node already has a root of another image or version")
	ErrVersionExists  = errors.New("image version already exists")
)

// Store is implemented by both backends.
type Store interface {
	// Backend is "zfs" or "dir".
	Backend() string
	// Images lists every image, sorted by name, each with its versions
	// sorted by name; an image whose first version failed to be created
	// has no versions.
	Images(ctx context.Context) ([]Image, error)
	// CreateVersion stores content as version of image (creating the image
	// if needed) and returns it with its sha256 digest and size.
	// Errors: ErrInvalidName, ErrVersionExists.
	CreateVersion(ctx context.Context, image, version string, content io.Reader) (Version, error)
	// Clone gives node a writable root of image@version. Idempotent: a
	// root of the same image and version is returned as it is.
	// Errors: ErrInvalidName, ErrUnknownImage, ErrUnknownVersion,
	// ErrRootConflict (the node has a root of another image or version).
	Clone(ctx context.Context, node, image, version string) (Root, error)
	// Root returns node's root. Errors: ErrInvalidName, ErrNoRoot.
	Root(ctx context.Context, node string) (Root, error)
	// DestroyRoot deletes node's root; no root is not an error.
	// Errors: ErrInvalidName.
	DestroyRoot(ctx context.Context, node string) error
}

var (
	_ Store = (*ZFS)(nil)
	_ Store = (*Dir)(nil)
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// ValidateName checks an image, version or node name: [a-z0-9][a-z0-9._-]*,
// at most 63 characters. The error wraps ErrInvalidName.
func ValidateName(name string) error {
	if len(name) > 63 || !nameRE.MatchString(name) {
		return fmt.Errorf("%q: %w", name, ErrInvalidName)
	}
	return nil
}

// validateNames checks several names, in order.
func validateNames(names ...string) error {
	for _, n := range names {
		if err := ValidateName(n); err != nil {
			return fmt.Errorf("imagestore: %w", err)
		}
	}
	return nil
}

// digestOf formats a finished sha256 hash as "sha256:<hex>".
func digestOf(h hash.Hash) string {
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ctxReader stops reading once ctx is done, so a long copy is cancellable.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// writeContent copies content to w, returning its sha256 digest and size.
func writeContent(ctx context.Context, w io.Writer, content io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), ctxReader{ctx, content})
	if err != nil {
		return "", n, err
	}
	return digestOf(h), n, nil
}
