package dev

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rackflow/rackflow/dev/qemurig"
	"github.com/rackflow/rackflow/dev/vrack"
	"github.com/rackflow/rackflow/netboot"
)

// usbDir holds the virtual rack's USB ports (vrack.Config.USBDir).
func usbDir(stateDir string) string { return filepath.Join(stateDir, "usb") }

// USBInsert plugs a USB thumb drive into node of the `rackflow dev` running
// in stateDir (from any process): on the QEMU rig (the node has a folder
// under <state>/rig) a real hot-plug over the VM's QMP socket
// (qemurig.InsertUSB), on the virtual rack a new drive in the node's
// virtual USB port (vrack.InsertUSB). A node in identify mode then asks for
// its identity. It returns the drive's serial and which rig it used.
func USBInsert(ctx context.Context, stateDir, node string) (serial, rig string, err error) {
	if err := netboot.ValidName(node); err != nil {
		return "", "", fmt.Errorf("usb insert: %w", err)
	}
	nodeDir := filepath.Join(stateDir, "rig", node)
	if fi, err := os.Stat(nodeDir); err == nil && fi.IsDir() {
		serial, err := qemurig.InsertUSB(ctx, nodeDir)
		return serial, RigQEMU, err
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("usb insert: %w", err)
	}
	serial, err = vrack.InsertUSB(usbDir(stateDir), node)
	return serial, RigVirtual, err
}
