package vrack

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rackflow/rackflow/activities/bmc"
	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/netboot/swarm"
)

// Tests run a real netboot.Service (DHCP, TFTP, HTTP on 127.0.0.1 free
// ports) and drive the virtual nodes through their BMC with activities/bmc.

var testKey = []byte("vrack-test-checkin-key-0123456789")

const (
	bmcUser = "admin"
	bmcPass = "vrack-bmc-pw"
)

func testLogger(t *testing.T) *slog.Logger { return levelLogger(t, slog.LevelInfo) }

func levelLogger(t *testing.T, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
}

// recorder is a netboot.Signaler that records check-ins.
type recorder struct {
	mu      sync.Mutex
	got     []netboot.CheckIn
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) CheckIn(_ context.Context, c netboot.CheckIn) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, c)
	close(r.changed)
	r.changed = make(chan struct{})
	return nil
}

func (r *recorder) all() []netboot.CheckIn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]netboot.CheckIn(nil), r.got...)
}

// waitN waits until n check-ins were recorded.
func (r *recorder) waitN(ctx context.Context, n int) ([]netboot.CheckIn, error) {
	for {
		r.mu.Lock()
		got, ch := append([]netboot.CheckIn(nil), r.got...), r.changed
		r.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return got, fmt.Errorf("%d check-ins, want %d: %w", len(got), n, ctx.Err())
		}
	}
}

// rig is a netboot service, a virtual rack and the expected boot data.
type rig struct {
	svc    *netboot.Service
	sig    *recorder
	rack   *Rack
	base   string // HTTP base of the netboot service
	digest string // of every node's image
	runs   map[string]string

	tracker *swarm.Tracker // rigOpts.swarm
	seeder  *swarm.Seeder

	evMu   sync.Mutex
	events []Event
}

func (g *rig) allEvents() []Event {
	g.evMu.Lock()
	defer g.evMu.Unlock()
	return append([]Event(nil), g.events...)
}

func testMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x52, 0x46, 0x01, byte(i >> 8), byte(i)}
}

// testSpecs returns n node specs r01n001… with BMCs on 127.1.<i>:0.
func testSpecs(n int) []NodeSpec {
	specs := make([]NodeSpec, n)
	for i := range specs {
		specs[i] = NodeSpec{
			Name:     fmt.Sprintf("r01n%03d", i+1),
			Rack:     "r01",
			MAC:      testMAC(i + 1),
			Arch:     7,
			BMCAddr:  fmt.Sprintf("127.1.%d.%d:0", (i+1)>>8, (i+1)&0xff),
			Username: bmcUser,
			Password: bmcPass,
		}
	}
	return specs
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// startRig starts netboot with a reservation (127.100.x.y) and an install
// profile per spec (mode(spec) overrides the mode), then the rack.
func startRig(t *testing.T, specs []NodeSpec, mode func(NodeSpec) netboot.Mode) *rig {
	t.Helper()
	return startRigLevel(t, specs, mode, slog.LevelInfo)
}

// startRigLevel is startRig with the services logging at level.
func startRigLevel(t *testing.T, specs []NodeSpec, mode func(NodeSpec) netboot.Mode, level slog.Level) *rig {
	t.Helper()
	return startRigOpts(t, specs, rigOpts{mode: mode, level: level})
}

// rigOpts tune startRigOpts.
type rigOpts struct {
	mode  func(NodeSpec) netboot.Mode
	level slog.Level
	// swarm seeds every export from a real seeder, with the service's
	// tracker, and gives the agents the swarm arguments; infoHash, when
	// set, replaces the info hash a node's boot profile carries.
	swarm    bool
	seedFor  time.Duration
	infoHash func(node, real string) string
}

// startRigOpts starts netboot and the rack as startRig does, with o.
func startRigOpts(t *testing.T, specs []NodeSpec, o rigOpts) *rig {
	t.Helper()
	mode, level := o.mode, o.level
	dir := t.TempDir()
	tftpRoot, artifacts := filepath.Join(dir, "tftp"), filepath.Join(dir, "artifacts")
	writeFile(t, filepath.Join(tftpRoot, "ipxe.efi"), randomBytes(t, 100_000))
	writeFile(t, filepath.Join(tftpRoot, "undionly.kpxe"), randomBytes(t, 70_000))
	writeFile(t, filepath.Join(artifacts, "vmlinuz"), randomBytes(t, 300_000))
	writeFile(t, filepath.Join(artifacts, "initrd.img"), randomBytes(t, 200_000))
	image := randomBytes(t, 1<<20)
	sum := sha256.Sum256(image)
	g := &rig{sig: newRecorder(), digest: "sha256:" + hex.EncodeToString(sum[:]), runs: map[string]string{}}

	res := netboot.StaticReservations{}
	for i, s := range specs {
		res[s.MAC.String()] = netboot.Reservation{Node: s.Name, Rack: s.Rack,
			IP: net.IPv4(127, 100, byte((i+1)>>8), byte((i+1)&0xff)), Mask: net.CIDRMask(8, 32)}
	}
	cfg := netboot.Config{
		DHCPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ServerIP: "127.0.0.1",
		TFTPRoot: tftpRoot, ArtifactsDir: artifacts, StoreDir: filepath.Join(dir, "store"),
		CheckInKey: testKey, Reservations: res, Signaler: g.sig, Logger: levelLogger(t, level),
	}
	if o.swarm {
		g.tracker = swarm.NewTracker(time.Minute)
		cfg.Tracker = g.tracker
	}
	svc, err := netboot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("netboot Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("netboot did not stop")
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("netboot Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("netboot not ready")
	}
	g.svc, g.base = svc, svc.HTTPBase()
	if o.swarm {
		g.seeder, err = swarm.NewSeeder(swarm.SeederConfig{ListenAddr: "127.0.0.1:0", Announce: g.base + "/announce", Logger: levelLogger(t, level)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.seeder.Close() })
	}

	for _, s := range specs {
		exp := filepath.Join(dir, "exports", s.Name)
		writeFile(t, filepath.Join(exp, "image.raw"), image)
		if err := svc.Store().Export(s.Name, exp); err != nil {
			t.Fatal(err)
		}
		run := "run-" + s.Name
		g.runs[s.Name] = run
		args := netboot.AgentArgs{
			Node: s.Name, Run: run, Token: netboot.MintToken(testKey, s.Name, run),
			CheckInURL: g.base + "/v1/checkin",
			ImageURL:   g.base + "/exports/" + s.Name + "/image.raw",
			Digest:     g.digest,
		}
		if o.swarm {
			mi, err := g.seeder.Seed(context.Background(), s.Name, filepath.Join(exp, "image.raw"), g.digest, args.ImageURL)
			if err != nil {
				t.Fatal(err)
			}
			data, err := swarm.Encode(mi)
			if err != nil {
				t.Fatal(err)
			}
			if err := svc.Store().PutTorrent(s.Name, run, data); err != nil {
				t.Fatal(err)
			}
			args.TorrentURL, args.InfoHash, args.SeedFor = g.base+netboot.TorrentPath(s.Name, run), mi.HashInfoBytes().HexString(), o.seedFor
			if o.infoHash != nil {
				args.InfoHash = o.infoHash(s.Name, args.InfoHash)
			}
		}
		p := netboot.Profile{MAC: s.MAC.String(), Node: s.Name, Rack: s.Rack, Mode: netboot.ModeInstall,
			Kernel: "vmlinuz", Initrd: "initrd.img", Args: args.Encode()}
		if mode != nil {
			p.Mode = mode(s)
		}
		if err := svc.Store().Put(p); err != nil {
			t.Fatal(err)
		}
	}

	rack, err := Start(context.Background(), Config{
		DHCPServer: svc.DHCPAddr(), TFTPServer: svc.TFTPAddr(), Logger: levelLogger(t, level),
		OnEvent: func(e Event) {
			g.evMu.Lock()
			g.events = append(g.events, e)
			g.evMu.Unlock()
		},
	}, specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rack.Close(); err != nil {
			t.Errorf("rack Close: %v", err)
		}
	})
	g.rack = rack
	return g
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// provision does what the Provision workflow does to a node's BMC: next
// boot from the network once, then power-cycle.
func provision(ctx context.Context, n *Node, device string) error {
	c, err := bmc.Open(ctx, bmc.Config{Driver: "redfish", Address: n.BMCAddr(), Username: bmcUser, Password: bmcPass}, nil)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close(ctx) }()
	if err := c.SetBootDevice(ctx, device, false); err != nil {
		return err
	}
	return c.PowerCycle(ctx)
}

func settled(s NodeState) bool {
	return s.Phase == PhaseUp || s.Phase == PhaseFailed || s.Phase == PhaseLocal
}

func steps(events []Event) []Step {
	var out []Step
	for _, e := range events {
		out = append(out, e.Step)
	}
	return out
}
