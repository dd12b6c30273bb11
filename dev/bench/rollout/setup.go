package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/rackflow/rackflow/activities"
	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/dev"
)

// bench is a running embedded default plus what the runs need.
type bench struct {
	cfg      config
	log      *slog.Logger
	logs     *logCounter
	progress io.Writer // progress lines (stderr)

	stateDir string
	env      *dev.Env
	acts     *activities.Activities // wired as dev.Start wires the workers' activities
	version  string                 // demo image version rolled out
	layout   layout
	startup  time.Duration

	extraWorker worker.Worker // -autoscaling-worker experiment, else nil
}

// layout is which racks and nodes each part uses.
type layout struct {
	main      []string // racks of the main rollout and the plain loop
	mainNodes []string
	limited   string // rack with production-like limits ("" when skipped)
	unlimited string // rack without limits
}

// Limits of the production-like rack (HOP-SCOTCH-style: few clones at once,
// staggered power-ons); the stagger comes from -stagger.
const (
	prodClones   = 2
	prodPowerOns = 4
	prodInFlight = 16
)

// startBench creates the state dir, writes the inventory and starts the
// embedded default on free loopback ports.
func startBench(ctx context.Context, cfg config, log *slog.Logger, logs *logCounter, progress io.Writer) (*bench, error) {
	b := &bench{cfg: cfg, log: log, logs: logs, progress: progress}
	dir, err := os.MkdirTemp(cfg.stateRoot, "rackflow-bench-*")
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	b.stateDir = dir
	bmcPort, err := freePort()
	if err != nil {
		b.close()
		return nil, err
	}
	invPath := filepath.Join(dir, "inventory.yaml")
	if b.layout, err = writeInventory(invPath, cfg, bmcPort); err != nil {
		b.close()
		return nil, err
	}
	uiAddr := ""
	if cfg.ui {
		uiAddr = "127.0.0.1:0"
	}
	begin := time.Now()
	fmt.Fprintf(progress, "starting the embedded default in %s (%d virtual nodes)…\n", dir, len(b.layout.mainNodes)+2*cfg.limitedNodes)
	b.env, err = dev.Start(ctx, dev.Options{
		StateDir: dir, Inventory: invPath,
		FrontendAddr: "127.0.0.1:0", UIAddr: uiAddr,
		DHCPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		BMCPort: bmcPort, ImageSize: cfg.imageSize, Store: "dir",
		CheckInTimeout: cfg.checkIn, Log: log,
		// This benchmark measures orchestration; image transfer at scale is
		// bench:swarm's. Plain HTTP keeps 1000 virtual nodes from running
		// 1000 BitTorrent clients in one process.
		ImageTransport: dev.TransportHTTP,
	})
	if err != nil {
		b.close()
		return nil, fmt.Errorf("embedded default: %w", err)
	}
	b.startup = time.Since(begin)
	if b.version, err = dev.LatestVersion(ctx, b.env.Images, dev.DemoImage); err != nil {
		b.close()
		return nil, err
	}
	key, err := os.ReadFile(filepath.Join(dir, "checkin.key"))
	if err != nil {
		b.close()
		return nil, fmt.Errorf("check-in key: %w", err)
	}
	b.acts = &activities.Activities{
		Inventory: b.env.Inventory, Images: b.env.Images, Boot: b.env.Netboot.Store(),
		DialBMC: activities.DialBMCLib(log), HTTPBase: b.env.Netboot.HTTPBase(), CheckInKey: key,
		Kernel: "vmlinuz", Initrd: "initrd.img", Log: log,
	}
	if cfg.autoscalingWorker {
		if err := b.startAutoscalingWorker(); err != nil {
			b.close()
			return nil, err
		}
	}
	fmt.Fprintf(progress, "ready in %.1fs: temporal %s, netboot %s, web ui %q, image %s@%s (%d bytes)\n",
		b.startup.Seconds(), b.env.Temporal.FrontendAddr(), b.env.Netboot.HTTPBase(), b.env.Temporal.UIURL(),
		dev.DemoImage, b.version, cfg.imageSize)
	return b, nil
}

// close stops the embedded default and removes the state dir unless -keep.
func (b *bench) close() {
	if b.extraWorker != nil {
		b.extraWorker.Stop()
		b.extraWorker = nil
	}
	if b.env != nil {
		b.env.Close()
		b.env = nil
	}
	if b.stateDir == "" {
		return
	}
	if b.cfg.keep {
		fmt.Fprintf(b.progress, "state dir kept: %s\n", b.stateDir)
		return
	}
	if err := os.RemoveAll(b.stateDir); err != nil {
		b.log.Error("removing the state dir", "dir", b.stateDir, "error", err)
	}
}

// writeInventory writes the benchmark's inventory to path: racks r01…rK
// with cfg.nodes nodes each and GenerateVirtual's limits, then (unless
// cfg.limitedNodes is 0) one rack with production-like limits and one with
// none, cfg.limitedNodes nodes each.
func writeInventory(path string, cfg config, bmcPort int) (layout, error) {
	racks, per := cfg.racks, cfg.nodes
	if cfg.limitedNodes > 0 {
		racks += 2
		per = max(per, cfg.limitedNodes)
	}
	inv, err := inventory.GenerateVirtual(racks, per, "127.0.0.1", bmcPort)
	if err != nil {
		return layout{}, fmt.Errorf("inventory: %w", err)
	}
	var l layout
	for i := range inv.Racks {
		r := &inv.Racks[i]
		switch i {
		case cfg.racks:
			l.limited = r.Name
			r.Limits = inventory.Limits{Clones: prodClones, PowerOns: prodPowerOns,
				PowerOnInterval: inventory.Duration(cfg.stagger), InFlight: prodInFlight}
		case cfg.racks + 1:
			l.unlimited = r.Name
			r.Limits = inventory.Limits{}
		default:
			l.main = append(l.main, r.Name)
			if cfg.mainLimits != nil {
				r.Limits = *cfg.mainLimits
			}
		}
	}
	keep := inv.Nodes[:0]
	for _, n := range inv.Nodes {
		limit := cfg.nodes
		if n.Rack == l.limited || n.Rack == l.unlimited {
			limit = cfg.limitedNodes
		}
		if n.Slot > limit {
			continue
		}
		keep = append(keep, n)
		if n.Rack != l.limited && n.Rack != l.unlimited {
			l.mainNodes = append(l.mainNodes, n.Name)
		}
	}
	inv.Nodes = keep
	data, err := inv.Marshal()
	if err != nil {
		return layout{}, fmt.Errorf("inventory: %w", err)
	}
	if _, err := inventory.Parse(path, data); err != nil {
		return layout{}, fmt.Errorf("inventory: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return layout{}, fmt.Errorf("inventory: %w", err)
	}
	return l, nil
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago (every virtual
// BMC listens on it, each on its own loopback address).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// resetRoots undoes the main rollout on nodes so that the plain loop does
// the same work: export withdrawn, root destroyed (boot profiles are
// already local).
func (b *bench) resetRoots(ctx context.Context, nodes []string) error {
	begin := time.Now()
	errs := make(chan error, len(nodes))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := b.acts.Unexport(ctx, n); err != nil {
				errs <- err
				return
			}
			if err := b.acts.DestroyRoot(ctx, n); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("resetting roots: %w", err)
	}
	fmt.Fprintf(b.progress, "destroyed %d roots in %.1fs\n", len(nodes), time.Since(begin).Seconds())
	return nil
}
