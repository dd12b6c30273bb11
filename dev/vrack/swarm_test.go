package vrack

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/netboot/swarm"
)

// TestSwarmBoot: four nodes download the image through the swarm (the
// netboot service's tracker, a seeder, each other, the web seed), verify
// the digest and check in; they keep seeding after the check-in, until
// their run's .torrent is withdrawn.
func TestSwarmBoot(t *testing.T) {
	g := startRigOpts(t, testSpecs(4), rigOpts{level: slog.LevelWarn, swarm: true, seedFor: time.Minute})
	ctx := testCtx(t, 2*time.Minute)
	start := time.Now()
	for _, n := range g.rack.Nodes() {
		if err := provision(ctx, n, "pxe"); err != nil {
			t.Fatalf("%s: %v", n.Name(), err)
		}
	}
	got, err := g.sig.waitN(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("4 nodes checked in %v after power-on", time.Since(start))
	for _, c := range got {
		if c.Status != netboot.CheckInOK || c.Digest != g.digest {
			t.Errorf("check-in %+v, want ok with digest %s", c, g.digest)
		}
	}
	ih := ""
	for _, n := range g.rack.Nodes() {
		if st, err := n.WaitFor(ctx, settled); err != nil || st.Phase != PhaseUp {
			t.Fatalf("%s: %+v, %v", n.Name(), st, err)
		}
	}
	st, ok := g.seeder.Stats(g.digest)
	if !ok {
		t.Fatal("seeder dropped the torrent")
	}
	ih = st.InfoHash
	// Seeding after the check-in: the tracker still has the seeder and
	// the four nodes, each from its own leased address.
	peers, _ := g.tracker.Peers(ih)
	nodes := 0
	for _, p := range peers {
		switch a := p.Addr().String(); {
		case strings.HasPrefix(a, "127.100."):
			nodes++
		case a != "127.0.0.1":
			t.Errorf("peer %s is not the seeder or a node's leased address", p)
		}
	}
	if len(peers) != 5 || nodes != 4 {
		t.Fatalf("tracker peers %v, want the seeder and 4 nodes", peers)
	}
	t.Logf("seeder sent %d bytes for %d nodes of a %d-byte image", st.Sent, 4, 1<<20)

	// Withdrawing one node's .torrent stops its seeding, not the others'.
	first := g.rack.Nodes()[0]
	if err := g.svc.Store().DeleteTorrent(first.Name(), g.runs[first.Name()]); err != nil {
		t.Fatal(err)
	}
	if st, err := first.WaitFor(ctx, func(s NodeState) bool { return s.SeedStop != "" }); err != nil || st.SeedStop != swarm.StopWithdrawn {
		t.Fatalf("%s: seeding stopped %q, %v; want %q", first.Name(), st.SeedStop, err, swarm.StopWithdrawn)
	}
	for _, n := range g.rack.Nodes()[1:] {
		if st := n.State(); st.SeedStop != "" {
			t.Errorf("%s stopped seeding (%s) when another node's .torrent was withdrawn", n.Name(), st.SeedStop)
		}
	}
}

// TestSwarmInfoHashMismatch: a node whose boot profile names another info
// hash than the served .torrent refuses it and reports the mismatch.
func TestSwarmInfoHashMismatch(t *testing.T) {
	g := startRigOpts(t, testSpecs(1), rigOpts{level: slog.LevelWarn, swarm: true,
		infoHash: func(_, real string) string { return strings.Repeat("0", 40) }})
	ctx := testCtx(t, time.Minute)
	n := g.rack.Nodes()[0]
	if err := provision(ctx, n, "pxe"); err != nil {
		t.Fatal(err)
	}
	got, err := g.sig.waitN(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c := got[0]; c.Status != netboot.CheckInError || !strings.Contains(c.Message, "info hash mismatch") || c.Digest != "" {
		t.Fatalf("check-in %+v, want an error naming the info hash mismatch", c)
	}
	if st, _ := g.seeder.Stats(g.digest); st.Sent != 0 {
		t.Errorf("the seeder sent %d bytes to a node that refused the torrent", st.Sent)
	}
}
