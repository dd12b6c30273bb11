package vrack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackflow/rackflow/activities/bmc"
	"github.com/rackflow/rackflow/dev/vrack/redfishemu"
	"github.com/rackflow/rackflow/netboot"
)

var fullBoot = []Step{StepPowerOn, StepDHCP, StepTFTP, StepIPXEDHCP, StepScript, StepKernel, StepInitrd, StepAgent, StepImage, StepCheckIn}

// Two nodes boot through the real netboot servers and check in.
func TestFullBootTwoNodes(t *testing.T) {
	g := startRig(t, testSpecs(2), nil)
	ctx := testCtx(t, 60*time.Second)
	for _, n := range g.rack.Nodes() {
		if err := provision(ctx, n, "pxe"); err != nil {
			t.Fatalf("%s: %v", n.Name(), err)
		}
	}
	got, err := g.sig.waitN(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		if c.Status != netboot.CheckInOK || c.Digest != g.digest || c.Run != g.runs[c.Node] {
			t.Errorf("check-in %+v, want ok with digest %s and run %s", c, g.digest, g.runs[c.Node])
		}
	}
	for i, n := range g.rack.Nodes() {
		st, err := n.WaitFor(ctx, settled)
		if err != nil {
			t.Fatal(err)
		}
		wantIP := net.IPv4(127, 100, 0, byte(i+1))
		if st.Phase != PhaseUp || !st.Power || st.Boots != 1 || st.NetBoots != 1 || !st.IP.Equal(wantIP) ||
			st.CheckIns != 1 || st.LastCheckIn == nil || st.LastCheckIn.HTTPStatus != http.StatusAccepted {
			t.Errorf("%s: state %+v (last check-in %+v)", n.Name(), st, st.LastCheckIn)
		}
		if got := steps(n.Events()); !slices.Equal(got, fullBoot) {
			t.Errorf("%s: steps %v, want %v", n.Name(), got, fullBoot)
		}
		for _, e := range n.Events() {
			if e.Err != nil {
				t.Errorf("%s: step %s failed: %v", n.Name(), e.Step, e.Err)
			}
		}
		if b := n.BootOverride(); b.Enabled != redfishemu.OverrideDisabled {
			t.Errorf("%s: Once override not cleared by the boot: %+v", n.Name(), b)
		}
	}
	// OnEvent saw every node event, in each node's order (Close delivers
	// what is still queued).
	if err := g.rack.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range g.rack.Nodes() {
		var mine []Event
		for _, e := range g.allEvents() {
			if e.Node == n.Name() {
				mine = append(mine, e)
			}
		}
		if !slices.Equal(steps(mine), steps(n.Events())) {
			t.Errorf("%s: OnEvent steps %v, node events %v", n.Name(), steps(mine), steps(n.Events()))
		}
	}
}

func TestFaults(t *testing.T) {
	specs := testSpecs(3)
	specs[0].Fault, specs[1].Fault, specs[2].Fault = FaultNoCheckIn, FaultBadDigest, FaultAgentError
	g := startRig(t, specs, nil)
	ctx := testCtx(t, 60*time.Second)
	for _, n := range g.rack.Nodes() {
		if err := provision(ctx, n, "pxe"); err != nil {
			t.Fatal(err)
		}
	}
	states := map[string]NodeState{}
	for _, n := range g.rack.Nodes() {
		st, err := n.WaitFor(ctx, settled)
		if err != nil {
			t.Fatal(err)
		}
		states[n.Name()] = st
	}
	got := map[string]netboot.CheckIn{}
	for _, c := range g.sig.all() {
		got[c.Node] = c
	}

	// no-checkin: verified the image, never posted.
	nc := g.rack.Node("r01n001")
	if _, ok := got["r01n001"]; ok || states["r01n001"].CheckIns != 0 || states["r01n001"].Phase != PhaseUp {
		t.Errorf("no-checkin: check-in %+v, state %+v", got["r01n001"], states["r01n001"])
	}
	ev := nc.Events()
	if last := ev[len(ev)-1]; last.Step != StepCheckIn || !errors.Is(last.Err, ErrCheckInWithheld) {
		t.Errorf("no-checkin: last event %+v", last)
	}
	// bad-digest: status ok with a well-formed wrong digest.
	if c := got["r01n002"]; c.Status != netboot.CheckInOK || c.Digest == g.digest || !strings.HasPrefix(c.Digest, "sha256:") || len(c.Digest) != 71 {
		t.Errorf("bad-digest: check-in %+v", c)
	}
	// agent-error: status error with a message, no image download.
	if c := got["r01n003"]; c.Status != netboot.CheckInError || c.Message == "" {
		t.Errorf("agent-error: check-in %+v", c)
	}
	if slices.Contains(steps(g.rack.Node("r01n003").Events()), StepImage) {
		t.Errorf("agent-error downloaded the image")
	}
}

// Boot target disk, a local-mode profile ("exit") and power-off leave the
// node idle.
func TestLocalBootAndPowerOff(t *testing.T) {
	specs := testSpecs(2)
	g := startRig(t, specs, func(s NodeSpec) netboot.Mode {
		if s.Name == "r01n002" {
			return netboot.ModeLocal
		}
		return netboot.ModeInstall
	})
	ctx := testCtx(t, 60*time.Second)

	disk := g.rack.Node("r01n001")
	if err := provision(ctx, disk, "disk"); err != nil {
		t.Fatal(err)
	}
	st, err := disk.WaitFor(ctx, settled)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != PhaseLocal || st.NetBoots != 0 || !slices.Equal(steps(disk.Events()), []Step{StepPowerOn, StepLocalBoot}) {
		t.Errorf("disk boot: state %+v, steps %v", st, steps(disk.Events()))
	}

	local := g.rack.Node("r01n002")
	if err := provision(ctx, local, "pxe"); err != nil {
		t.Fatal(err)
	}
	st, err = local.WaitFor(ctx, settled)
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{StepPowerOn, StepDHCP, StepTFTP, StepIPXEDHCP, StepScript, StepLocalBoot}
	if st.Phase != PhaseLocal || st.NetBoots != 1 || !slices.Equal(steps(local.Events()), want) {
		t.Errorf("local profile: state %+v, steps %v", st, steps(local.Events()))
	}

	c, err := bmc.Open(ctx, bmc.Config{Driver: "redfish", Address: local.BMCAddr(), Username: bmcUser, Password: bmcPass}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(ctx) }()
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if st := local.State(); st.Power || st.Phase != PhaseOff {
		t.Errorf("after power off: %+v", st)
	}
	if len(g.sig.all()) != 0 {
		t.Errorf("unexpected check-ins %+v", g.sig.all())
	}
}

// A reset during the image download abandons that boot (its request is
// cancelled) and the node boots again from the start.
func TestResetDuringBoot(t *testing.T) {
	var requests atomic.Int32
	started := make(chan struct{}, 1)
	var imageURL string
	// The image server blocks the first download until the client goes away,
	// then redirects to the real export.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			started <- struct{}{}
			<-r.Context().Done()
			return
		}
		http.Redirect(w, r, imageURL, http.StatusFound)
	}))
	defer slow.Close()

	specs := testSpecs(1)
	g := startRig(t, specs, nil)
	imageURL = g.base + "/exports/r01n001/image.raw"
	run := "run-reset"
	args := netboot.AgentArgs{Node: "r01n001", Run: run, Token: netboot.MintToken(testKey, "r01n001", run),
		CheckInURL: g.base + "/v1/checkin", ImageURL: slow.URL + "/image.raw", Digest: g.digest}
	if err := g.svc.Store().Put(netboot.Profile{MAC: specs[0].MAC.String(), Node: "r01n001", Mode: netboot.ModeInstall,
		Kernel: "vmlinuz", Initrd: "initrd.img", Args: args.Encode()}); err != nil {
		t.Fatal(err)
	}

	ctx := testCtx(t, 60*time.Second)
	n := g.rack.Node("r01n001")
	c, err := bmc.Open(ctx, bmc.Config{Driver: "redfish", Address: n.BMCAddr(), Username: bmcUser, Password: bmcPass}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(ctx) }()
	if err := c.SetBootDevice(ctx, "pxe", true); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("first image download never started")
	}
	if err := c.PowerReset(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := g.sig.waitN(ctx, 1); err != nil {
		t.Fatal(err)
	}
	st, err := n.WaitFor(ctx, settled)
	if err != nil {
		t.Fatal(err)
	}
	if st.Boots != 2 || st.NetBoots != 2 || st.Phase != PhaseUp || st.CheckIns != 1 {
		t.Errorf("state %+v", st)
	}
	want := append([]Step{StepPowerOn, StepDHCP, StepTFTP, StepIPXEDHCP, StepScript, StepKernel, StepInitrd, StepAgent}, fullBoot...)
	if got := steps(n.Events()); !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	if got := requests.Load(); got != 2 {
		t.Errorf("image requests %d, want 2", got)
	}
}

// A node whose DHCP server never answers fails its boot (PXE-E51), and a
// power-off during the DHCP wait ends the boot at once.
func TestNoDHCPAnswer(t *testing.T) {
	saved := dhcpTimeouts
	defer func() { dhcpTimeouts = saved }()

	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	discovers := make(chan struct{}, 100)
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := silent.ReadFrom(buf); err != nil {
				return
			}
			discovers <- struct{}{}
		}
	}()
	ctx := testCtx(t, 30*time.Second)
	cfg := Config{DHCPServer: silent.LocalAddr().String(), Logger: testLogger(t)}

	dhcpTimeouts = []time.Duration{50 * time.Millisecond, 50 * time.Millisecond}
	rack, err := Start(context.Background(), cfg, testSpecs(1))
	if err != nil {
		t.Fatal(err)
	}
	defer rack.Close()
	n := rack.Nodes()[0]
	if err := provision(ctx, n, "pxe"); err != nil {
		t.Fatal(err)
	}
	st, err := n.WaitFor(ctx, settled)
	if err != nil {
		t.Fatal(err)
	}
	ev := n.Events()
	if st.Phase != PhaseFailed || ev[len(ev)-1].Step != StepDHCP || !errors.Is(ev[len(ev)-1].Err, errNoAnswer) {
		t.Errorf("state %+v, last event %+v", st, ev[len(ev)-1])
	}
	if got := len(discovers); got != 2 {
		t.Errorf("DISCOVERs sent %d, want 2", got)
	}
	if err := rack.Close(); err != nil {
		t.Fatal(err)
	}

	dhcpTimeouts = []time.Duration{time.Hour}
	rack2, err := Start(context.Background(), cfg, testSpecs(1))
	if err != nil {
		t.Fatal(err)
	}
	defer rack2.Close()
	n = rack2.Nodes()[0]
	c, err := bmc.Open(ctx, bmc.Config{Driver: "redfish", Address: n.BMCAddr(), Username: bmcUser, Password: bmcPass}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(ctx) }()
	if err := c.SetBootDevice(ctx, "pxe", false); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 { // 2 from the first rack, then this boot's
		select {
		case <-discovers:
		case <-ctx.Done():
			t.Fatal("no DISCOVER from the second boot")
		}
	}
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if st := n.State(); st.Phase != PhaseOff {
		t.Errorf("after power off: %+v", st)
	}
	closed := make(chan struct{})
	go func() { _ = rack2.Close(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close waited for an abandoned DHCP wait")
	}
}

func TestStartValidation(t *testing.T) {
	ok := testSpecs(2)
	tests := []struct {
		name   string
		mutate func([]NodeSpec)
		want   string
	}{
		{"empty name", func(s []NodeSpec) { s[0].Name = "" }, "empty name"},
		{"duplicate name", func(s []NodeSpec) { s[1].Name = s[0].Name }, "duplicate name"},
		{"short MAC", func(s []NodeSpec) { s[0].MAC = s[0].MAC[:4] }, "not 6 bytes"},
		{"duplicate MAC", func(s []NodeSpec) { s[1].MAC = s[0].MAC }, "duplicate MAC"},
		{"duplicate BMC", func(s []NodeSpec) { s[1].BMCAddr = s[0].BMCAddr }, "duplicate BMC"},
		{"bad BMC address", func(s []NodeSpec) { s[0].BMCAddr = "127.1.0.1" }, "BMC address"},
		{"no username", func(s []NodeSpec) { s[0].Username = "" }, "username"},
		{"unknown fault", func(s []NodeSpec) { s[0].Fault = "explode" }, "unknown fault"},
	}
	for _, tt := range tests {
		specs := append([]NodeSpec(nil), ok...)
		tt.mutate(specs)
		r, err := Start(context.Background(), Config{}, specs)
		if err == nil {
			_ = r.Close()
			t.Errorf("%s: Start succeeded", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	// A BMC address already in use fails Start and releases the others.
	busy, err := net.Listen("tcp", "127.1.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	specs := testSpecs(2)
	specs[1].BMCAddr = busy.Addr().String()
	if r, err := Start(context.Background(), Config{}, specs); err == nil {
		_ = r.Close()
		t.Fatal("Start on a busy address succeeded")
	}
}

// The rack stops when its Start context is done.
func TestStartContextStopsRack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Start(ctx, Config{}, testSpecs(1))
	if err != nil {
		t.Fatal(err)
	}
	addr := r.Nodes()[0].BMCAddr()
	cancel()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("BMC %s still listening", addr)
	}
}

// 1000 nodes each get a BMC on their own loopback address.
func TestThousandBMCs(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const count = 1000
	start := time.Now()
	r, err := Start(context.Background(), Config{}, testSpecs(count))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	t.Logf("started %d BMC emulators in %v", count, time.Since(start))
	ctx := testCtx(t, 60*time.Second)
	for _, i := range []int{0, count / 2, count - 1} {
		n := r.Nodes()[i]
		c, err := bmc.Open(ctx, bmc.Config{Driver: "redfish", Address: n.BMCAddr(), Username: bmcUser, Password: bmcPass}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetBootDevice(ctx, "disk", false); err != nil {
			t.Fatal(err)
		}
		if err := c.PowerOn(ctx); err != nil {
			t.Fatal(err)
		}
		_ = c.Close(ctx)
		if st, err := n.WaitFor(ctx, settled); err != nil || st.Phase != PhaseLocal {
			t.Fatalf("%s: %+v, %v", n.Name(), st, err)
		}
		if !strings.HasPrefix(n.BMCAddr(), fmt.Sprintf("127.1.%d.%d:", (i+1)>>8, (i+1)&0xff)) {
			t.Errorf("%s: BMC on %s", n.Name(), n.BMCAddr())
		}
	}
}
