//go:build !linux

package main

import (
	"context"
	"errors"
	"net"
	"os"
)

// errNotLinux is returned by the Linux-only steps on other systems, where
// the agent only builds (for editors and `go vet`) and runs its tests.
var errNotLinux = errors.New("only supported on Linux")

// bringUp fails: link and DHCP setup need Linux.
func (n *networkSetup) bringUp(ctx context.Context, iface string) (netConfig, error) {
	return netConfig{}, errors.New("link: " + errNotLinux.Error())
}

// blockDeviceSize fails: BLKGETSIZE64 is Linux's.
func blockDeviceSize(f *os.File) (int64, error) { return 0, errNotLinux }

// flushBlockDevice fails: BLKFLSBUF is Linux's.
func flushBlockDevice(f *os.File) error { return errNotLinux }

// dropFileCache does nothing off Linux.
func dropFileCache(f *os.File) error { return nil }

// systemIdentity cannot apply an identity off Linux.
type systemIdentity struct{}

func (systemIdentity) applyIdentity(string, *net.IPNet, string) error { return errNotLinux }
