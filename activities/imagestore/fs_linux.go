package imagestore

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// reflink makes dst share src's blocks (FICLONE: btrfs, XFS with reflink,
// bcachefs, …). Filesystems without it (ext4, tmpfs) return an error and
// the caller copies instead.
func reflink(dst, src *os.File) error {
	return unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
}

// renameNoReplace renames oldpath to newpath unless newpath exists, in
// which case the error satisfies errors.Is(err, fs.ErrExist).
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return renameIfAbsent(oldpath, newpath) // filesystem without RENAME_NOREPLACE
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}
