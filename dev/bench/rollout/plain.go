package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/dev"
	"github.com/rackflow/rackflow/dev/vrack"
	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/workflows"
)

// plain provisions every node of racks without Temporal: per rack, window
// goroutines take the rack's nodes in slot order (the rollout's sliding
// window) and call the activity functions Provision calls, in its order,
// with the rack's clone and power-on limits enforced in process (gate). The
// check-in is awaited on the virtual node itself: its agent posts to the
// netboot service, whose Signaler (the Temporal client) finds no workflow
// run and answers 409, and the node records the attempt.
func (b *bench) plain(ctx context.Context, label string, racks []string, window int) (*runStats, error) {
	st := b.newStats(label, kindPlain, racks, window)
	st.checkInHTTP = map[int]int{}
	fmt.Fprintf(b.progress, "[%s] %d nodes on %d racks, %d goroutines per rack, limits %s (in process)\n", label, st.nodes, len(racks), st.window, st.limits)
	type result struct {
		node   string
		p      breakdown
		status int
		err    error
	}
	results := make(chan result, st.nodes)
	var finished, failed atomic.Int64
	logs0 := b.logs.snapshot()
	cpu0, machine0 := cpuTime(), readMachineCPU()
	begin := time.Now()
	stop := b.watch(ctx, label, begin, func(context.Context) string {
		return fmt.Sprintf("%d/%d provisioned, %d failed", finished.Load()-failed.Load(), st.nodes, failed.Load())
	})
	var wg sync.WaitGroup
	for _, rack := range racks {
		r, _ := b.env.Inventory.Rack(rack)
		g := newGate(limitsOf(r.Limits))
		var nodes []inventory.Node
		for _, n := range b.env.Inventory.Nodes {
			if n.Rack == rack {
				nodes = append(nodes, n)
			}
		}
		slices.SortStableFunc(nodes, func(x, y inventory.Node) int { return x.Slot - y.Slot })
		queue := make(chan string, len(nodes))
		for _, n := range nodes {
			queue <- n.Name
		}
		close(queue)
		for range st.window {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for node := range queue {
					p, status, err := b.provisionPlain(ctx, g, node)
					finished.Add(1)
					if err != nil {
						failed.Add(1)
					}
					results <- result{node: node, p: p, status: status, err: err}
				}
			}()
		}
	}
	wg.Wait()
	stop()
	st.wall = time.Since(begin)
	st.cpu, st.machineBusy = cpuTime()-cpu0, machine0.busyShare(readMachineCPU())
	st.dbConns = dbHandles(b.stateDir)
	st.rssPeakKB, st.rssKB = memoryKB()
	st.logs = b.logs.since(logs0)
	close(results)
	var parts []breakdown
	for r := range results {
		if r.err != nil {
			st.failed++
			st.failures = append(st.failures, fmt.Sprintf("%s: %v", r.node, r.err))
			continue
		}
		st.ok++
		st.checkInHTTP[r.status]++
		st.perNode = append(st.perNode, r.p.total)
		st.extraBoots += r.p.boots - 1
		parts = append(parts, r.p)
	}
	st.parts = meanBreakdown(parts)
	fmt.Fprintf(b.progress, "[%s] done in %.1fs: %d provisioned, %d failed\n", label, st.wall.Seconds(), st.ok, st.failed)
	return st, ctx.Err()
}

// provisionPlain runs Provision's happy path for node with plain calls:
// LookupNode, Clone (clone slot), Export, SetBoot install, PowerCycle
// (power-on slot and stagger) and the wait for the node's check-in — up to
// DefaultBootAttempts boots, the later ones hard, as Provision — then
// SetBoot local. It returns the node's time split as a breakdown and the
// HTTP status the check-in got.
func (b *bench) provisionPlain(ctx context.Context, g *gate, node string) (p breakdown, status int, err error) {
	begin := time.Now()
	defer func() {
		// Clone heartbeats through the activity API once it has run for
		// 10 s, which panics outside an activity: report it as a failure.
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: activity panicked outside a Temporal activity: %v", node, r)
		}
		p.total = time.Since(begin)
		p.rest = p.total - p.exec - p.limitWait - p.boot
	}()
	timed := func(f func() error) error {
		t := time.Now()
		err := f()
		p.exec += time.Since(t)
		return err
	}
	waited := func(into *time.Duration, f func() (func(), error)) (func(), error) {
		t := time.Now()
		release, err := f()
		*into += time.Since(t)
		p.limitWait += time.Since(t)
		return release, err
	}
	vn := b.env.Rack.Node(node)
	if vn == nil {
		return p, 0, fmt.Errorf("%s: not in the virtual rack", node)
	}
	if err := timed(func() error { _, err := b.acts.LookupNode(ctx, node); return err }); err != nil {
		return p, 0, fmt.Errorf("look up: %w", err)
	}
	release, err := waited(&p.waitClone, func() (func(), error) { return g.clone(ctx) })
	if err != nil {
		return p, 0, err
	}
	var root workflows.Root
	err = timed(func() (err error) {
		root, err = b.acts.Clone(ctx, workflows.CloneInput{Node: node, Image: dev.DemoImage, Version: b.version})
		return err
	})
	release()
	if err != nil {
		return p, 0, err
	}
	var export workflows.ExportResult
	if err := timed(func() (err error) { export, err = b.acts.Export(ctx, node); return err }); err != nil {
		return p, 0, err
	}
	run := newRunID()
	install := workflows.SetBootInput{Node: node, Mode: workflows.BootInstall, ImageURL: export.URL, Digest: export.Digest, Run: run,
		TorrentURL: export.TorrentURL, InfoHash: export.InfoHash}
	if err := timed(func() error { return b.acts.SetBoot(ctx, install) }); err != nil {
		return p, 0, err
	}
	var checkIn *vrack.CheckInResult
	for attempt := 1; attempt <= workflows.DefaultBootAttempts && checkIn == nil; attempt++ {
		p.boots++
		release, err := waited(&p.waitPower, func() (func(), error) { return g.powerOn(ctx) })
		if err != nil {
			return p, 0, err
		}
		err = timed(func() error {
			return b.acts.PowerCycle(ctx, workflows.PowerCycleInput{Node: node, Hard: attempt > 1})
		})
		release()
		if err != nil {
			return p, 0, err
		}
		t := time.Now()
		wctx, cancel := context.WithTimeout(ctx, b.cfg.checkIn)
		s, err := vn.WaitFor(wctx, func(s vrack.NodeState) bool { return s.LastCheckIn != nil && s.LastCheckIn.Run == run })
		cancel()
		p.boot += time.Since(t)
		if err == nil {
			checkIn = s.LastCheckIn
		} else if ctx.Err() != nil {
			return p, 0, ctx.Err()
		}
	}
	if checkIn == nil {
		return p, 0, fmt.Errorf("%s: no check-in within %s after %d boots", node, b.cfg.checkIn, workflows.DefaultBootAttempts)
	}
	if checkIn.Status != netboot.CheckInOK || checkIn.Digest != root.Digest {
		return p, checkIn.HTTPStatus, fmt.Errorf("%s: check-in %s, digest %s (want %s): %s", node, checkIn.Status, checkIn.Digest, root.Digest, checkIn.Message)
	}
	if err := timed(func() error {
		return b.acts.SetBoot(ctx, workflows.SetBootInput{Node: node, Mode: workflows.BootLocal})
	}); err != nil {
		return p, checkIn.HTTPStatus, err
	}
	return p, checkIn.HTTPStatus, nil
}

// limitsOf converts inventory limits as activities.LookupNode does.
func limitsOf(l inventory.Limits) workflows.RackLimits {
	return workflows.RackLimits{
		Clones: l.Clones, PowerOns: l.PowerOns, InFlight: l.InFlight,
		PowerOnInterval: time.Duration(l.PowerOnInterval), PermitLease: time.Duration(l.PermitLease),
	}
}

// newRunID is a random UUID (version 4): a run ID the Temporal server
// accepts and finds no run for, so the check-in signal gets NotFound → 409.
func newRunID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
