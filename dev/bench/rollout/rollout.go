package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rackflow/rackflow/dev"
	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

// rolloutSpec is one rollout to measure.
type rolloutSpec struct {
	label  string
	racks  []string
	window int // per rack; 0: the racks' in-flight limit
}

// progressEvery is how often a running part prints a progress line.
const progressEvery = 10 * time.Second

// rollout runs one Rollout over spec.racks through the real stack
// (starter.StartRollout + WaitRollout) and measures it: wall time, process
// CPU, peak RSS, then per-node durations from visibility and the histories
// of every run it caused. The stats are returned also on error, as far as
// they go.
func (b *bench) rollout(ctx context.Context, spec rolloutSpec) (*runStats, error) {
	st := b.newStats(spec.label, kindRollout, spec.racks, spec.window)
	st.id = "bench-" + strings.ReplaceAll(spec.label, " ", "-") + "-" + starter.NewRolloutID(time.Now())
	fmt.Fprintf(b.progress, "[%s] %d nodes on %s, window %d per rack, limits %s\n", spec.label, st.nodes, strings.Join(spec.racks, ","), st.window, st.limits)
	logs0 := b.logs.snapshot()
	cpu0, machine0 := cpuTime(), readMachineCPU()
	begin := time.Now()
	_, err := b.env.Client.StartRollout(ctx, workflows.RolloutInput{
		ID: st.id, Selector: workflows.Selector{Racks: spec.racks},
		Image: dev.DemoImage, Version: b.version, Window: spec.window, CheckInTimeout: b.cfg.checkIn,
	})
	if err != nil {
		return st, err
	}
	var qmax queueMax
	stop := b.watch(ctx, spec.label, begin, func(ctx context.Context) string {
		q := b.sampleQueue(ctx)
		qmax.add(q)
		p, err := b.env.Client.RolloutProgress(ctx, st.id)
		if err != nil {
			return "progress: " + err.Error() + "; " + q.String()
		}
		return fmt.Sprintf("%d/%d provisioned, %d failed; %s", p.Provisioned, p.Total, p.Failed, q)
	})
	res, err := b.env.Client.WaitRollout(ctx, st.id)
	stop()
	st.queueMax = qmax.get()
	st.wall = time.Since(begin)
	st.cpu, st.machineBusy = cpuTime()-cpu0, machine0.busyShare(readMachineCPU())
	st.dbConns = dbHandles(b.stateDir)
	st.rssPeakKB, st.rssKB = memoryKB()
	st.logs = b.logs.since(logs0)
	if err != nil {
		return st, err
	}
	st.ok = len(res.Provisioned)
	st.failed = len(res.Failures) + len(res.Skipped)
	for _, f := range res.Failures {
		st.failures = append(st.failures, fmt.Sprintf("%s (%s): %s", f.Node, f.Step, f.Error))
	}
	fmt.Fprintf(b.progress, "[%s] %s in %.1fs: %d provisioned, %d failed, %d skipped\n",
		spec.label, res.State, st.wall.Seconds(), st.ok, len(res.Failures), len(res.Skipped))
	if err := b.collect(ctx, st, spec.racks); err != nil {
		return st, fmt.Errorf("collecting figures: %w", err)
	}
	return st, nil
}

// watch prints line(ctx) every progressEvery until the returned stop is
// called.
func (b *bench) watch(ctx context.Context, label string, begin time.Time, line func(context.Context) string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
				s := line(qctx)
				qcancel()
				if ctx.Err() == nil {
					fmt.Fprintf(b.progress, "[%s %5.0fs] %s\n", label, time.Since(begin).Seconds(), s)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// newStats starts the stats of a run over racks: node count, limits and
// window as the rollout would see them.
func (b *bench) newStats(label, kind string, racks []string, window int) *runStats {
	st := &runStats{label: label, kind: kind, racks: len(racks)}
	for _, n := range b.env.Inventory.Nodes {
		if slices.Contains(racks, n.Rack) {
			st.nodes++
		}
	}
	r, _ := b.env.Inventory.Rack(racks[0])
	l := r.Limits
	st.limits = describeLimits(l.Clones, l.PowerOns, time.Duration(l.PowerOnInterval), l.InFlight)
	st.window = window
	if st.window == 0 {
		st.window = l.InFlight
	}
	if st.window == 0 {
		st.window = workflows.DefaultWindow
	}
	return st
}

// describeLimits renders a rack's limits: "clones 8, power-ons 8, stagger
// 0s, in-flight 64", or "none".
func describeLimits(clones, powerOns int, stagger time.Duration, inFlight int) string {
	if clones == 0 && powerOns == 0 && stagger == 0 && inFlight == 0 {
		return "none"
	}
	n := func(v int) string {
		if v == 0 {
			return "∞"
		}
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("clones %s, power-ons %s, stagger %s, in-flight %s", n(clones), n(powerOns), stagger, n(inFlight))
}
