//go:build linux

package main

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blockDeviceSize returns the size in bytes of the block device open as f
// (ioctl BLKGETSIZE64).
func blockDeviceSize(f *os.File) (int64, error) {
	var size uint64
	err := control(f, func(fd uintptr) error {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size)))
		if errno != 0 {
			return errno
		}
		return nil
	})
	return int64(size), err
}

// flushBlockDevice writes back and drops the buffer cache of the block
// device open as f (ioctl BLKFLSBUF), so that later reads come from the
// device itself.
func flushBlockDevice(f *os.File) error {
	return control(f, func(fd uintptr) error {
		return unix.IoctlSetInt(int(fd), unix.BLKFLSBUF, 0)
	})
}

// dropFileCache asks the kernel to drop the cached pages of the regular
// file open as f (best effort: clean pages only).
func dropFileCache(f *os.File) error {
	return control(f, func(fd uintptr) error {
		return unix.Fadvise(int(fd), 0, 0, unix.FADV_DONTNEED)
	})
}

// control runs fn with f's descriptor without changing its blocking mode.
func control(f *os.File, fn func(fd uintptr) error) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = fn(fd) }); err != nil {
		return err
	}
	return ferr
}
