package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// disk is the write target: a block device, or a regular file (tests).
type disk struct {
	path  string
	f     *os.File
	size  int64 // capacity in bytes; 0 = no limit (regular file)
	block bool
}

// openDisk opens the existing block device or regular file at path for
// reading and writing. A block device is opened exclusively (O_EXCL), which
// Linux refuses while it or a partition of it is mounted, and its size is
// read with BLKGETSIZE64. Nothing is ever created, so a mistyped device
// name cannot end up as a file in /dev. Errors start with "disk:".
func openDisk(path string) (*disk, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	mode := fi.Mode()
	switch {
	case mode&os.ModeDevice != 0 && mode&os.ModeCharDevice == 0:
		f, err := os.OpenFile(path, os.O_RDWR|os.O_EXCL, 0)
		if errors.Is(err, syscall.EBUSY) {
			return nil, fmt.Errorf("disk: %s is in use (mounted, or held by another program): %w", path, err)
		}
		if err != nil {
			return nil, fmt.Errorf("disk: %w", err)
		}
		size, err := blockDeviceSize(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("disk: size of %s: %w", path, err)
		}
		if size <= 0 {
			f.Close()
			return nil, fmt.Errorf("disk: %s has no capacity (no medium?)", path)
		}
		return &disk{path: path, f: f, size: size, block: true}, nil
	case mode.IsRegular():
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("disk: %w", err)
		}
		return &disk{path: path, f: f}, nil
	default:
		return nil, fmt.Errorf("disk: %s is neither a block device nor a regular file (%s)", path, mode.Type())
	}
}

// close closes the disk.
func (d *disk) close() error {
	return d.f.Close()
}

// readBack makes the first n bytes durable and returns the sha256 of what
// the disk holds there: fsync, then for a block device BLKFLSBUF so the
// reads come from the device rather than the page cache (for a regular
// file: truncate to n first, and drop its cached pages, best effort).
// Errors start with "digest:".
func (d *disk) readBack(ctx context.Context, n int64) (string, error) {
	if !d.block {
		if err := d.f.Truncate(n); err != nil {
			return "", fmt.Errorf("digest: truncate %s: %w", d.path, err)
		}
	}
	if err := d.f.Sync(); err != nil {
		return "", fmt.Errorf("digest: fsync %s: %w", d.path, err)
	}
	if d.block {
		if err := flushBlockDevice(d.f); err != nil {
			return "", fmt.Errorf("digest: flush the buffer cache of %s: %w", d.path, err)
		}
	} else {
		_ = dropFileCache(d.f)
	}
	h := sha256.New()
	read, err := io.CopyBuffer(h, ctxReader{ctx, io.NewSectionReader(d.f, 0, n)}, make([]byte, copyBufferSize))
	if err != nil {
		return "", fmt.Errorf("digest: read back %s at byte %d: %w", d.path, read, err)
	}
	if read != n {
		return "", fmt.Errorf("digest: read back only %d of %d bytes from %s", read, n, d.path)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader is an io.Reader that fails once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}
