//go:build unix && !linux

package imagestore

import (
	"errors"
	"os"
)

// reflink is Linux-only here; the caller copies instead.
func reflink(dst, src *os.File) error { return errors.ErrUnsupported }

// renameNoReplace renames oldpath to newpath unless newpath exists.
func renameNoReplace(oldpath, newpath string) error { return renameIfAbsent(oldpath, newpath) }
