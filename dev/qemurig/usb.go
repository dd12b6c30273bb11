package qemurig

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// USB thumb-drive insertion (Purdue's identify step) on a rig VM: a raw
// image file attached over QMP as a usb-storage device on the VM's xHCI
// controller, as an operator plugs a drive in. The guest's kernel
// (xhci_pci, usb_storage, sd_mod in the initramfs) shows it as /dev/sdX
// about a second later.

// USBDriveSize is the size of an inserted drive's image (sparse).
const USBDriveSize = 1 << 20

// QMPSocket is the path of the QMP socket of the VM whose folder is
// nodeDir (it exists while the VM runs).
func QMPSocket(nodeDir string) string { return filepath.Join(nodeDir, "qmp.sock") }

// ErrVMNotRunning: the VM of the folder has no QMP socket (powered off).
var ErrVMNotRunning = errors.New("the VM is not running (no QMP socket)")

// InsertUSB plugs a new USB drive into the running VM whose folder is
// nodeDir: it creates <nodeDir>/usb-<serial>.img and, over the VM's QMP
// socket, runs blockdev-add (a raw drive on that file) and device_add
// usb-storage (removable, with the serial) on bus xhci.0. It returns the
// drive's serial. Any process may call it (the socket is a file); QEMU
// serves one QMP client at a time, so a concurrent call may wait up to
// 5 s for the socket.
func InsertUSB(ctx context.Context, nodeDir string) (string, error) {
	sock := QMPSocket(nodeDir)
	if _, err := os.Stat(sock); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("usb insert %s: %w", filepath.Base(nodeDir), ErrVMNotRunning)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	serial := "RF" + strings.ToUpper(hex.EncodeToString(b))
	img := filepath.Join(nodeDir, "usb-"+serial+".img")
	f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("usb insert: %w", err)
	}
	if err := errors.Join(f.Truncate(USBDriveSize), f.Close()); err != nil {
		return "", fmt.Errorf("usb insert: %w", err)
	}
	mon, err := qmp.NewSocketMonitor("unix", sock, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("usb insert: QMP %s: %w", sock, err)
	}
	if err := mon.Connect(); err != nil {
		return "", fmt.Errorf("usb insert: QMP %s: %w", sock, err)
	}
	defer func() { _ = mon.Disconnect() }()
	node := "usb" + strings.ToLower(serial)
	for _, cmd := range []qmp.Command{
		{Execute: "blockdev-add", Args: map[string]any{
			"node-name": node, "driver": "raw",
			"file": map[string]any{"driver": "file", "filename": img},
		}},
		{Execute: "device_add", Args: map[string]any{
			"driver": "usb-storage", "id": "disk-" + node, "drive": node, "bus": "xhci.0",
			"serial": serial, "removable": true,
		}},
	} {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		raw, err := json.Marshal(cmd)
		if err != nil {
			return "", err
		}
		if err := runQMP(ctx, mon, raw); err != nil {
			return "", fmt.Errorf("usb insert: QMP %s: %w", cmd.Execute, err)
		}
	}
	return serial, nil
}

// qmpTimeout bounds the wait for one QMP answer (QEMU answers these in
// milliseconds; a hung VM does not answer at all).
var qmpTimeout = 10 * time.Second

// runQMP runs one command, giving up after qmpTimeout or when ctx ends
// (the monitor is then disconnected, which ends the pending Run).
func runQMP(ctx context.Context, mon *qmp.SocketMonitor, raw []byte) error {
	done := make(chan error, 1)
	go func() {
		_, err := mon.Run(raw)
		done <- err
	}()
	timer := time.NewTimer(qmpTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		_ = mon.Disconnect()
		<-done
		return fmt.Errorf("no answer within %s", qmpTimeout)
	case <-ctx.Done():
		_ = mon.Disconnect()
		<-done
		return ctx.Err()
	}
}
