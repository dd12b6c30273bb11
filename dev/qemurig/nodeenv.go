package qemurig

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// KernelMetaPackage is the Debian package whose dependency names the current
// kernel image package (linux-image-<version>-amd64).
const KernelMetaPackage = "linux-image-amd64"

// InitrdModules are the kernel modules the node environment loads: the
// virtio NIC, disk and entropy source QEMU gives each VM (without a
// hardware RNG, TCG guests wait minutes for the kernel's CRNG and the
// agent's first getrandom blocks), e1000 for the other NIC model, and the
// xHCI + USB mass-storage stack a thumb drive needs. Their dependency
// closure is resolved with kmod's modprobe against the extracted tree.
var InitrdModules = []string{"virtio_pci", "virtio_net", "virtio_blk", "virtio_rng", "e1000", "xhci_pci", "usb_storage", "sd_mod"}

//go:embed init.sh
var initScript string

// NodeEnv is the netbooted environment of a rig node: a Debian kernel and an
// initramfs holding busybox, the modules above and rackflow-agent.
type NodeEnv struct {
	Kernel  string // path of the kernel image (vmlinuz)
	Initrd  string // path of the gzipped newc initramfs
	Version string // kernel release, e.g. "6.1.0-57-amd64"
}

// BuildNodeEnv fetches the current Debian kernel into cacheDir (once per
// kernel release: `apt-get download` of the package KernelMetaPackage depends
// on, `dpkg-deb -x`, `depmod -b`) and builds initrd.img in outDir from
// busybox-static, the closure of InitrdModules and the static agent binary
// at agent. It returns the paths of both files.
func BuildNodeEnv(ctx context.Context, cacheDir, agent, outDir string, log *slog.Logger) (NodeEnv, error) {
	tree, kver, err := fetchKernel(ctx, cacheDir, log)
	if err != nil {
		return NodeEnv{}, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return NodeEnv{}, err
	}
	env := NodeEnv{Kernel: filepath.Join(tree, "boot", "vmlinuz-"+kver), Initrd: filepath.Join(outDir, "initrd.img"), Version: kver}
	if err := buildInitrd(ctx, tree, kver, agent, env.Initrd); err != nil {
		return NodeEnv{}, fmt.Errorf("initramfs: %w", err)
	}
	return env, nil
}

var kernelPkgRE = regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-[0-9][^\s]*-amd64)\s*$`)

// fetchKernel returns the extracted tree of the current kernel package and
// its release, downloading and extracting it when cacheDir lacks it.
func fetchKernel(ctx context.Context, cacheDir string, log *slog.Logger) (tree, kver string, err error) {
	out, err := run(ctx, "", "apt-cache", "depends", KernelMetaPackage)
	if err != nil {
		return "", "", fmt.Errorf("kernel package: %w (run apt-get update first)", err)
	}
	m := kernelPkgRE.FindStringSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("kernel package: %s depends on no linux-image-<version>-amd64:\n%s", KernelMetaPackage, out)
	}
	pkg := m[1]
	kver = strings.TrimPrefix(pkg, "linux-image-")
	tree = filepath.Join(cacheDir, pkg)
	if _, err := os.Stat(filepath.Join(tree, ".complete")); err == nil {
		return tree, kver, nil
	}
	log.Info("rig: fetching the node kernel", "package", pkg, "cache", cacheDir)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", "", err
	}
	tmp, err := os.MkdirTemp(cacheDir, ".fetch-*")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	if _, err := run(ctx, tmp, "apt-get", "download", pkg); err != nil {
		return "", "", fmt.Errorf("kernel package %s: %w", pkg, err)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(debs) != 1 {
		return "", "", fmt.Errorf("kernel package %s: apt-get download left %d .deb files", pkg, len(debs))
	}
	x := filepath.Join(tmp, "x")
	if _, err := run(ctx, "", "dpkg-deb", "-x", debs[0], x); err != nil {
		return "", "", err
	}
	if _, err := run(ctx, "", "depmod", "-b", x, kver); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(x, ".complete"), nil, 0o644); err != nil {
		return "", "", err
	}
	_ = os.RemoveAll(tree)
	if err := os.Rename(x, tree); err != nil {
		return "", "", err
	}
	return tree, kver, nil
}

// buildInitrd writes a gzipped newc cpio archive to dst holding /init,
// busybox and its applet links, rackflow-agent and the module closure.
func buildInitrd(ctx context.Context, tree, kver, agent, dst string) error {
	root, err := os.MkdirTemp(filepath.Dir(dst), ".initrd-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "run", "mnt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox (Debian busybox-static): %w", err)
	}
	if err := copyFile(busybox, filepath.Join(root, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	applets, err := run(ctx, "", busybox, "--list")
	if err != nil {
		return err
	}
	for _, a := range strings.Fields(applets) {
		// busybox lists itself; a link named busybox would replace the binary.
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	if err := copyFile(agent, filepath.Join(root, "bin", "rackflow-agent"), 0o755); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	modRoot := filepath.Join(tree, "lib", "modules", kver)
	for _, m := range InitrdModules {
		deps, err := run(ctx, "", "modprobe", "-d", tree, "-S", kver, "--show-depends", m)
		if err != nil {
			return fmt.Errorf("module %s: %w", m, err)
		}
		for _, line := range strings.Split(deps, "\n") {
			path, ok := strings.CutPrefix(strings.TrimSpace(line), "insmod ")
			if !ok {
				continue // "builtin <name>"
			}
			rel, err := filepath.Rel(modRoot, strings.TrimSpace(path))
			if err != nil || strings.HasPrefix(rel, "..") {
				return fmt.Errorf("module %s: %q is outside %s", m, path, modRoot)
			}
			if err := copyFile(filepath.Join(modRoot, rel), filepath.Join(root, "lib", "modules", kver, rel), 0o644); err != nil {
				return err
			}
		}
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if err := copyFile(filepath.Join(modRoot, f), filepath.Join(root, "lib", "modules", kver, f), 0o644); err != nil {
			return err
		}
	}
	if _, err := run(ctx, "", "depmod", "-b", root, kver); err != nil {
		return err
	}
	init := strings.ReplaceAll(initScript, "@MODULES@", strings.Join(InitrdModules, " "))
	if err := os.WriteFile(filepath.Join(root, "init"), []byte(init), 0o755); err != nil {
		return err
	}
	return writeCpio(ctx, root, dst)
}

// writeCpio archives dir with cpio (newc, as the kernel's initramfs unpacker
// wants) and gzips it into dst atomically.
func writeCpio(ctx context.Context, dir, dst string) error {
	var list bytes.Buffer
	err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		list.WriteString(rel + "\n")
		return nil
	})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".initrd-*.img")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	zw, _ := gzip.NewWriterLevel(tmp, gzip.BestSpeed)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "cpio", "-o", "-H", "newc", "--quiet")
	cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr = dir, &list, zw, &stderr
	if err := cmd.Run(); err != nil {
		tmp.Close()
		return fmt.Errorf("cpio: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := zw.Close(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, bufio.NewReader(in)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// run runs a command in dir and returns its standard output; the error
// carries the command line and its standard error.
func run(ctx context.Context, dir, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
