package vrack

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/rackflow/rackflow/dev/vrack/redfishemu"
)

// Phase is where a node is in its life.
type Phase string

// Phases.
const (
	PhaseOff     Phase = "off"     // powered off
	PhaseBooting Phase = "booting" // firmware / iPXE / agent at work
	PhaseLocal   Phase = "local"   // booted the local disk; idle
	PhaseUp      Phase = "up"      // the agent finished (checked in, or withheld it by fault); idle
	PhaseFailed  Phase = "failed"  // a boot step failed; idle until the next reset
)

// CheckInResult is what a node's agent last posted and how it was answered.
type CheckInResult struct {
	Run        string
	Status     string // "ok" | "error"
	Digest     string // digest reported (FaultBadDigest: deliberately wrong)
	Message    string
	HTTPStatus int // answer of the check-in API (202 accepted); 0 when no answer
	Time       time.Time
}

// NodeState is a snapshot of a node.
type NodeState struct {
	Power       bool
	Phase       Phase
	Boots       int    // firmware starts (power-on or reset while on)
	NetBoots    int    // boots that went to the network (boot target Pxe)
	IP          net.IP // last leased address (nil before the first lease)
	CheckIns    int    // check-ins posted (answered or not)
	LastCheckIn *CheckInResult
	Identity    *Identity // set in identify mode (USB-identify)
	// SeedStop is why the agent's last seeding after a swarm download
	// stopped (swarm.StopTime, StopWithdrawn or StopContext); "" while it
	// seeds or before any.
	SeedStop string
}

// maxEvents bounds each node's event history.
const maxEvents = 256

// Node is one virtual node: its BMC emulator and the machine behind it.
type Node struct {
	spec    NodeSpec
	rack    *Rack
	log     *slog.Logger
	machine *redfishemu.Machine
	bmc     *redfishemu.Server

	mu      sync.Mutex
	gen     uint64             // bumped by every power transition
	cancel  context.CancelFunc // of the boot in progress
	state   NodeState
	events  []Event
	changed chan struct{} // closed and replaced on every change
}

func newNode(r *Rack, spec NodeSpec) (*Node, error) {
	n := &Node{
		spec:    spec,
		rack:    r,
		log:     r.log.With("node", spec.Name),
		state:   NodeState{Phase: PhaseOff},
		changed: make(chan struct{}),
	}
	n.spec.MAC = append(net.HardwareAddr(nil), spec.MAC...)
	n.machine = redfishemu.NewMachine(redfishemu.TargetHdd, n.onPower)
	srv, err := redfishemu.Start(redfishemu.Config{
		Addr:     spec.BMCAddr,
		Username: spec.Username,
		Password: spec.Password,
		Machine:  n.machine,
		Name:     spec.Name,
		UUID:     uuidFromMAC(spec.MAC),
		Logger:   n.log,
	})
	if err != nil {
		return nil, fmt.Errorf("vrack: node %s: %w", spec.Name, err)
	}
	n.bmc = srv
	return n, nil
}

// machineGUID derives a stable 16-byte system GUID (version 5 layout) from
// a MAC: the Redfish UUID and DHCP option 97.
func machineGUID(mac net.HardwareAddr) []byte {
	h := sha256.Sum256(append([]byte("rackflow-vrack:"), mac...))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return h[:16]
}

func uuidFromMAC(mac net.HardwareAddr) string {
	g := machineGUID(mac)
	return fmt.Sprintf("%x-%x-%x-%x-%x", g[0:4], g[4:6], g[6:8], g[8:10], g[10:16])
}

// Spec returns the node's spec.
func (n *Node) Spec() NodeSpec { return n.spec }

// Name returns the node's name.
func (n *Node) Name() string { return n.spec.Name }

// BMCAddr returns the address its BMC emulator listens on.
func (n *Node) BMCAddr() string { return n.bmc.Addr() }

// BMCRequests returns the last requests its BMC emulator served.
func (n *Node) BMCRequests() []string { return n.bmc.Requests() }

// BootOverride returns the BMC's current boot source override.
func (n *Node) BootOverride() redfishemu.Boot {
	_, b, _ := n.machine.State()
	return b
}

// State returns a snapshot of the node.
func (n *Node) State() NodeState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.snapshotLocked()
}

func (n *Node) snapshotLocked() NodeState {
	st := n.state
	st.IP = append(net.IP(nil), st.IP...)
	if st.LastCheckIn != nil {
		c := *st.LastCheckIn
		st.LastCheckIn = &c
	}
	if st.Identity != nil {
		id := *st.Identity
		st.Identity = &id
	}
	return st
}

// Events returns the node's last events (at most 256), oldest first.
func (n *Node) Events() []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Event(nil), n.events...)
}

// WaitFor blocks until cond holds for the node's state or ctx is done; it
// returns the last state seen. cond is evaluated on every change.
func (n *Node) WaitFor(ctx context.Context, cond func(NodeState) bool) (NodeState, error) {
	for {
		n.mu.Lock()
		st := n.snapshotLocked()
		ch := n.changed
		n.mu.Unlock()
		if cond(st) {
			return st, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st, fmt.Errorf("vrack: node %s: waiting (phase %s): %w", n.spec.Name, st.Phase, ctx.Err())
		}
	}
}

// notifyLocked wakes WaitFor callers. n.mu is held.
func (n *Node) notifyLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// onPower is the Machine's transition callback: it runs with the machine
// locked, so it only updates state and starts or cancels a boot goroutine.
func (n *Node) onPower(c redfishemu.Change) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gen++
	if n.cancel != nil {
		n.cancel()
		n.cancel = nil
	}
	n.state.Power = c.Power
	if !c.Power {
		n.state.Phase = PhaseOff
		n.eventLocked(StepPowerOff, nil, "reset", c.Reset)
		return
	}
	n.state.Boots++
	n.state.Phase = PhaseBooting
	n.eventLocked(StepPowerOn, nil, "reset", c.Reset, "target", c.Target)
	if !n.rack.addBoot() {
		return
	}
	ctx, cancel := context.WithCancel(n.rack.ctx)
	n.cancel = cancel
	go n.boot(ctx, cancel, n.gen, c.Target)
}

// eventLocked records an event and wakes waiters. n.mu is held.
func (n *Node) eventLocked(step Step, err error, attrs ...any) {
	e := Event{Node: n.spec.Name, Step: step, Err: err, Time: time.Now()}
	if len(n.events) == maxEvents {
		n.events = append(n.events[:0], n.events[1:]...)
	}
	n.events = append(n.events, e)
	n.notifyLocked()
	if err != nil {
		n.log.Warn("vrack step failed", append([]any{"step", string(step), "err", err}, attrs...)...)
	} else {
		n.log.Debug("vrack step", append([]any{"step", string(step)}, attrs...)...)
	}
	n.rack.events.push(e)
}

// step records an event of boot generation gen and applies update to the
// state; it does nothing when the boot has been superseded or abandoned
// (err is context.Canceled). It reports whether the boot is still current.
func (n *Node) step(gen uint64, step Step, err error, update func(*NodeState), attrs ...any) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if gen != n.gen || errors.Is(err, context.Canceled) {
		return false
	}
	if update != nil {
		update(&n.state)
	}
	n.eventLocked(step, err, attrs...)
	return true
}

// setPhase sets the phase if gen is still current.
func (n *Node) setPhase(gen uint64, p Phase) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if gen == n.gen {
		n.state.Phase = p
		n.notifyLocked()
	}
}
