package dev

import (
	"fmt"
	"os"
	"path/filepath"
)

// ipxeDir is where Debian's ipxe package installs the iPXE boot files.
const ipxeDir = "/usr/lib/ipxe"

// netbootFiles prepares the TFTP root and the artifacts directory of the
// virtual rack. The TFTP root links Debian's iPXE images when the ipxe
// package is installed; otherwise, and for the installer kernel and initrd,
// it holds small files labelled as virtual-rack stand-ins: virtual nodes
// fetch them over the real protocols but never execute them.
func netbootFiles(stateDir string) (tftpRoot, artifacts string, err error) {
	tftpRoot = filepath.Join(stateDir, "tftp")
	artifacts = filepath.Join(stateDir, "artifacts")
	for _, d := range []string{tftpRoot, artifacts} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", "", err
		}
	}
	for _, f := range []string{"undionly.kpxe", "ipxe.efi", "snp.efi", "ipxe-arm64.efi"} {
		if err := standIn(tftpRoot, f, filepath.Join(ipxeDir, f)); err != nil {
			return "", "", err
		}
	}
	for _, f := range []string{"vmlinuz", "initrd.img"} {
		if err := standIn(artifacts, f, ""); err != nil {
			return "", "", err
		}
	}
	return tftpRoot, artifacts, nil
}

// standIn places name in dir: a copy of real when that file exists, else a
// labelled stand-in. An existing file is kept.
func standIn(dir, name, real string) error {
	dst := filepath.Join(dir, name)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if real != "" {
		if data, err := os.ReadFile(real); err == nil {
			return writeFileAtomic(dst, data, 0o644)
		}
	}
	label := fmt.Sprintf("rackflow virtual rack: stand-in for %s (virtual nodes fetch it, never run it)\n", name)
	return writeFileAtomic(dst, []byte(label), 0o644)
}
