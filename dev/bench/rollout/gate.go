package main

import (
	"context"
	"sync"
	"time"

	"github.com/rackflow/rackflow/workflows"
)

// gate enforces one rack's limits inside this process for the plain loop:
// at most Clones clones and PowerOns power-ons at once, power-ons at least
// PowerOnInterval apart (the in-flight limit is the loop's window). A zero
// count is unlimited, as for the rack permits of a Provision.
type gate struct {
	clones, powerOns chan struct{} // nil: unlimited
	interval         time.Duration

	mu          sync.Mutex // held while a power-on waits out the stagger
	lastPowerOn time.Time
}

func newGate(l workflows.RackLimits) *gate {
	g := &gate{interval: l.PowerOnInterval}
	if l.Clones > 0 {
		g.clones = make(chan struct{}, l.Clones)
	}
	if l.PowerOns > 0 {
		g.powerOns = make(chan struct{}, l.PowerOns)
	}
	return g
}

// clone takes a clone slot; release returns it.
func (g *gate) clone(ctx context.Context) (release func(), err error) {
	return take(ctx, g.clones)
}

// powerOn takes a power-on slot and waits until the stagger since the last
// power-on has passed; release returns the slot.
func (g *gate) powerOn(ctx context.Context) (release func(), err error) {
	release, err = take(ctx, g.powerOns)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.lastPowerOn.IsZero() {
		if err := sleep(ctx, time.Until(g.lastPowerOn.Add(g.interval))); err != nil {
			release()
			return nil, err
		}
	}
	g.lastPowerOn = time.Now()
	return release, nil
}

func take(ctx context.Context, sem chan struct{}) (release func(), err error) {
	if sem == nil {
		return func() {}, nil
	}
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
