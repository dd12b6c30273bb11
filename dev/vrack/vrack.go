// Package vrack is a virtual rack for development and tests, in pure Go and
// without root: every node has a Redfish BMC emulator (package redfishemu)
// listening with TLS on its own loopback address, and a virtual machine
// behind it that, when powered on or reset with boot target Pxe, does what
// PXE firmware + iPXE + the rackflow agent do, with real protocol clients
// against the real netboot servers:
//
//	DHCP DISCOVER/REQUEST as a PXE ROM (options 60, 93, 94, 97) → lease
//	TFTP read of the boot file
//	DHCP again as iPXE (option 77 "iPXE") → boot file = URL of its script
//	GET the iPXE script, parse kernel/initrd/boot (or exit → local disk)
//	GET kernel and initrd
//	agent: netboot.ParseAgentArgs(kernel args), GET the image through
//	sha256, compare with the digest, POST netboot.CheckIn to the check-in URL
//	(identify profile: wait for a drive in its virtual USB port, POST
//	/v1/identify, take the identity and confirm it; see InsertUSB)
//
// After the lease, the node binds its UDP/TCP client sockets to its leased
// address when that is a loopback address (127/8), so servers see each node
// as its own host. The TFTP client (pin/tftp) cannot bind a local address
// and sends from 127.0.0.1.
//
// A node powered off, or booting boot target Hdd (the default boot order),
// stays idle. A reset or power-off during a boot cancels that boot. Each node
// costs one TLS listener and its accept goroutine, plus one goroutine while
// it boots: a rack of 1000 nodes runs in one process.
package vrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Fault makes a node misbehave on purpose (tests).
type Fault string

// Faults.
const (
	FaultNone       Fault = ""
	FaultNoCheckIn  Fault = "no-checkin"  // boots and verifies the image, never checks in
	FaultBadDigest  Fault = "bad-digest"  // checks in "ok" with a wrong (well-formed) digest
	FaultAgentError Fault = "agent-error" // the agent checks in with status "error" without downloading the image
)

func (f Fault) valid() bool {
	switch f {
	case FaultNone, FaultNoCheckIn, FaultBadDigest, FaultAgentError:
		return true
	}
	return false
}

// NodeSpec describes one virtual node.
type NodeSpec struct {
	Name, Rack         string
	MAC                net.HardwareAddr // 6 bytes
	Arch               uint16           // option 93 the firmware sends: 0 BIOS, 7 UEFI x86-64, 11 arm64
	BMCAddr            string           // "127.1.0.5:8443": the Redfish emulator listens there (TLS, self-signed)
	Username, Password string           // BMC credentials the emulator accepts
	Fault              Fault            // "", "no-checkin", "bad-digest", "agent-error"
}

// Config configures a rack.
type Config struct {
	// DHCPServer is the netboot DHCP "ip:port" the firmware sends to
	// (unicast, from 127.0.0.1 or the leased address); "" → 127.0.0.1:6767.
	DHCPServer string
	// TFTPServer is the netboot TFTP "ip:port"; "" → the offer's option 66
	// (or siaddr) on port 69, or the port option 66 carries ("host:port").
	TFTPServer string
	// Logger receives one record per event (Debug; failures at Warn). nil → discard.
	Logger *slog.Logger
	// USBDir holds the nodes' virtual USB ports (InsertUSB); "" gives the
	// nodes none: a node booted into identify mode then fails.
	USBDir string
	// IdentifyWait bounds how long a node in identify mode waits for a USB
	// drive; 0 → 2 h (the agent's default).
	IdentifyWait time.Duration
	// OnEvent, when set, receives every event in order, from one goroutine
	// (never with a lock held, so it may call back into the rack or a BMC).
	OnEvent func(Event)
}

// Step names what a node just did.
type Step string

// Steps, in boot order.
const (
	StepPowerOn   Step = "power-on"   // firmware starts (power on or reset)
	StepPowerOff  Step = "power-off"  // power removed; any boot in progress is abandoned
	StepLocalBoot Step = "local-boot" // booted the local disk (boot target not Pxe, or script "exit"); idle
	StepDHCP      Step = "dhcp"       // PXE ROM lease acquired
	StepTFTP      Step = "tftp"       // boot file read over TFTP
	StepIPXEDHCP  Step = "ipxe-dhcp"  // iPXE lease, boot file = script URL
	StepScript    Step = "script"     // iPXE script fetched and parsed
	StepKernel    Step = "kernel"     // kernel fetched
	StepInitrd    Step = "initrd"     // initrd fetched
	StepAgent     Step = "agent"      // agent started: kernel arguments parsed
	StepImage     Step = "image"      // image downloaded and its digest checked
	StepCheckIn   Step = "checkin"    // check-in posted (Err: refused, failed, or withheld by FaultNoCheckIn)
	StepSeeded    Step = "seeded"     // the agent stopped seeding after a swarm download (NodeState.SeedStop says why)
)

// Event is one step of one node. Err is nil when the step succeeded.
type Event struct {
	Node string
	Step Step
	Err  error
	Time time.Time
}

// ErrCheckInWithheld is the Err of the StepCheckIn event of a node with
// FaultNoCheckIn.
var ErrCheckInWithheld = errors.New("check-in withheld (fault no-checkin)")

// Rack is a running virtual rack.
type Rack struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // cancelled by Close or the Start context
	cancel context.CancelFunc
	events *dispatcher

	nodes  []*Node
	byName map[string]*Node

	dhcpTimeouts []time.Duration // copy of the package schedule at Start

	mu      sync.Mutex
	closing bool
	boots   sync.WaitGroup // boot goroutines

	closeOnce sync.Once
	closeErr  error
	stopCtx   func() bool
}

// Start validates the specs and starts every node's BMC emulator (nodes start
// powered off, no boot override, boot order Hdd). The rack lives until ctx is
// done or Close is called; Close waits for it to stop either way.
func Start(ctx context.Context, cfg Config, specs []NodeSpec) (*Rack, error) {
	if cfg.DHCPServer == "" {
		cfg.DHCPServer = "127.0.0.1:6767"
	}
	if _, err := net.ResolveUDPAddr("udp4", cfg.DHCPServer); err != nil {
		return nil, fmt.Errorf("vrack: DHCPServer %q: %w", cfg.DHCPServer, err)
	}
	if cfg.TFTPServer != "" {
		if _, err := net.ResolveUDPAddr("udp4", cfg.TFTPServer); err != nil {
			return nil, fmt.Errorf("vrack: TFTPServer %q: %w", cfg.TFTPServer, err)
		}
	}
	if cfg.IdentifyWait <= 0 {
		cfg.IdentifyWait = 2 * time.Hour
	}
	if err := validateSpecs(specs); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Rack{cfg: cfg, log: log.With("component", "vrack"), byName: make(map[string]*Node, len(specs)),
		dhcpTimeouts: append([]time.Duration(nil), dhcpTimeouts...)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.events = newDispatcher(cfg.OnEvent)
	for _, spec := range specs {
		if err := ctx.Err(); err != nil {
			_ = r.Close()
			return nil, fmt.Errorf("vrack: start: %w", err)
		}
		n, err := newNode(r, spec)
		if err != nil {
			_ = r.Close()
			return nil, err
		}
		r.nodes = append(r.nodes, n)
		r.byName[spec.Name] = n
	}
	r.stopCtx = context.AfterFunc(ctx, func() { _ = r.Close() })
	r.log.Info("virtual rack started", "nodes", len(r.nodes), "dhcp", cfg.DHCPServer, "tftp", cfg.TFTPServer)
	return r, nil
}

func validateSpecs(specs []NodeSpec) error {
	names := make(map[string]bool, len(specs))
	macs := make(map[string]bool, len(specs))
	bmcs := make(map[string]bool, len(specs))
	for i, s := range specs {
		switch {
		case s.Name == "":
			return fmt.Errorf("vrack: node %d: empty name", i)
		case names[s.Name]:
			return fmt.Errorf("vrack: node %s: duplicate name", s.Name)
		case len(s.MAC) != 6:
			return fmt.Errorf("vrack: node %s: MAC %q is not 6 bytes", s.Name, s.MAC)
		case macs[s.MAC.String()]:
			return fmt.Errorf("vrack: node %s: duplicate MAC %s", s.Name, s.MAC)
		case bmcs[s.BMCAddr]:
			return fmt.Errorf("vrack: node %s: duplicate BMC address %s", s.Name, s.BMCAddr)
		case s.Username == "":
			return fmt.Errorf("vrack: node %s: empty BMC username", s.Name)
		case !s.Fault.valid():
			return fmt.Errorf("vrack: node %s: unknown fault %q", s.Name, s.Fault)
		}
		if _, _, err := net.SplitHostPort(s.BMCAddr); err != nil {
			return fmt.Errorf("vrack: node %s: BMC address %q: %w", s.Name, s.BMCAddr, err)
		}
		names[s.Name], macs[s.MAC.String()], bmcs[s.BMCAddr] = true, true, true
	}
	return nil
}

// Node returns the named node, or nil.
func (r *Rack) Node(name string) *Node { return r.byName[name] }

// Nodes returns the nodes in the order of the specs given to Start.
func (r *Rack) Nodes() []*Node { return append([]*Node(nil), r.nodes...) }

// addBoot counts a boot goroutine about to start; false once Close began.
func (r *Rack) addBoot() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	r.boots.Add(1)
	return true
}

// Close stops every BMC emulator, abandons every boot in progress, waits for
// the boot goroutines (a TFTP request in flight may take a few seconds to
// give up) and delivers the last events. It is idempotent.
func (r *Rack) Close() error {
	r.closeOnce.Do(func() {
		if r.stopCtx != nil {
			r.stopCtx()
		}
		r.mu.Lock()
		r.closing = true
		r.mu.Unlock()
		r.cancel()
		var errs []error
		for _, n := range r.nodes {
			if err := n.bmc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("node %s: %w", n.spec.Name, err))
			}
		}
		r.boots.Wait()
		r.events.close()
		r.closeErr = errors.Join(errs...)
		r.log.Info("virtual rack stopped", "nodes", len(r.nodes))
	})
	return r.closeErr
}
