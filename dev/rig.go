package dev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/rackflow/rackflow/dev/qemurig"
)

// Rigs: what stands in for the data centre's machines.
const (
	RigVirtual = "virtual" // pure-Go virtual nodes with Redfish BMC emulators (default)
	RigQEMU    = "qemu"    // QEMU machines with ipmi_sim BMCs (package qemurig)
)

// checkRig validates the rig choice against the other options.
func (o *Options) checkRig() error {
	switch o.Rig {
	case "", RigVirtual:
		return nil
	case RigQEMU:
	default:
		return fmt.Errorf("rig %q: want %q or %q", o.Rig, RigVirtual, RigQEMU)
	}
	switch {
	case o.Racks > 1:
		return fmt.Errorf("rig %s: one rack only (got %d racks)", RigQEMU, o.Racks)
	case o.Nodes > qemurig.MaxNodes:
		return fmt.Errorf("rig %s: %d nodes is more than %d", RigQEMU, o.Nodes, qemurig.MaxNodes)
	case o.Inventory != "":
		return fmt.Errorf("rig %s: the rig writes its own inventory; drop --inventory", RigQEMU)
	case len(o.Faults) > 0:
		return fmt.Errorf("rig %s: faults are for virtual nodes", RigQEMU)
	}
	return nil
}

// nodeEnvironment builds the QEMU rig's kernel and initramfs (with the
// agent binary) and places them in the artifacts directory as vmlinuz and
// initrd.img, the names the boot profiles use.
func nodeEnvironment(ctx context.Context, o Options, artifacts string, log *slog.Logger) error {
	agent := o.Agent
	if agent == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("rackflow-agent: %w", err)
		}
		agent = filepath.Join(filepath.Dir(exe), "rackflow-agent")
	}
	if _, err := os.Stat(agent); err != nil {
		return fmt.Errorf("rackflow-agent: %w (build it with `go tool task build`, or pass its path)", err)
	}
	cache := o.CacheDir
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil { // no $HOME nor $XDG_CACHE_HOME
			dir = os.TempDir()
		}
		cache = filepath.Join(dir, "rackflow")
	}
	env, err := qemurig.BuildNodeEnv(ctx, filepath.Join(cache, "kernels"), agent, filepath.Join(o.StateDir, "rig-env"), log)
	if err != nil {
		return fmt.Errorf("node environment: %w", err)
	}
	for src, name := range map[string]string{env.Kernel: "vmlinuz", env.Initrd: "initrd.img"} {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(artifacts, name), data, 0o644); err != nil {
			return errors.Join(fmt.Errorf("artifact %s", name), err)
		}
	}
	log.Info("node environment ready", "kernel", env.Version, "agent", agent)
	return nil
}

// Timelines returns the last boot of every QEMU rig node (nil for the
// virtual rack).
func (e *Env) Timelines() ([]qemurig.Timeline, error) {
	if e.QEMU == nil {
		return nil, nil
	}
	var out []qemurig.Timeline
	for _, n := range e.QEMU.Nodes {
		t, err := e.QEMU.Timeline(n.Name, e.recorder)
		if err != nil {
			return out, err
		}
		out = append(out, t)
	}
	return out, nil
}

// VerifyDisks compares the start of every QEMU rig node's virtual disk with
// the root the node was provisioned from and returns one line per node:
// "r01n01 disk verified sha256:…" or why it is not. ok is false when a disk
// differs or cannot be read.
func (e *Env) VerifyDisks(ctx context.Context) (lines []string, ok bool) {
	ok = true
	for _, n := range e.QEMU.Nodes {
		root, err := e.Images.Root(ctx, n.Name)
		if err != nil {
			lines, ok = append(lines, fmt.Sprintf("%s disk NOT verified: %v", n.Name, err)), false
			continue
		}
		got, err := qemurig.DiskDigest(n.Disk(), root.Size)
		switch {
		case err != nil:
			lines, ok = append(lines, fmt.Sprintf("%s disk NOT verified: %v", n.Name, err)), false
		case got != root.Digest:
			lines, ok = append(lines, fmt.Sprintf("%s disk DIFFERS: %s, root %s@%s is %s", n.Name, got, root.Image, root.Version, root.Digest)), false
		default:
			lines = append(lines, fmt.Sprintf("%s disk verified %s (%s@%s)", n.Name, got, root.Image, root.Version))
		}
	}
	return lines, ok
}
