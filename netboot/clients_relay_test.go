package netboot

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRealClientRelay serves a client behind ISC's relay agent (dhcrelay
// from isc-dhcp-relay): three namespaces, server (10.79.0.1) — relay
// (10.79.0.2 upstream, 10.80.0.1 towards the client) — client. dhcrelay
// (-a) sets giaddr 10.80.0.1 and adds option 82 with the circuit ID "rl0";
// the server picks subnet r10 from giaddr, answers the relay on port 67,
// and udhcpc behind it gets an address of r10's pool with r10's router.
func TestRealClientRelay(t *testing.T) {
	requireRealClients(t, "busybox", "dhcrelay")
	n := newNSNet(t, true) // its "client" namespace is the relay
	relayNS := n.client
	client := &nsNet{server: n.server, client: relayNS + "-b"}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", client.client)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", client.client).Run() })
	ip("-n", relayNS, "link", "add", "rl0", "type", "veth", "peer", "name", nsClientIf, "netns", client.client)
	ip("-n", client.client, "link", "set", nsClientIf, "address", nsClientMAC)
	ip("-n", relayNS, "addr", "add", "10.80.0.1/24", "dev", "rl0")
	ip("-n", relayNS, "link", "set", "rl0", "up")
	ip("-n", client.client, "link", "set", "lo", "up")
	ip("-n", client.client, "link", "set", nsClientIf, "up")
	ip("-n", n.server, "route", "add", "10.80.0.0/24", "via", nsClientIP)

	state := t.TempDir()
	svc := n.startService(t, Config{
		DHCPAddr: "0.0.0.0:67", ServerIP: nsServerIP, Reservations: StaticReservations{}, DHCPStateDir: state,
		Subnets: []Subnet{
			{Name: "r09", Prefix: netip.MustParsePrefix("10.79.0.0/24")},
			{Name: "r10", Prefix: netip.MustParsePrefix("10.80.0.0/24"), PoolStart: netip.MustParseAddr("10.80.0.100"),
				PoolEnd: netip.MustParseAddr("10.80.0.109"), Router: netip.MustParseAddr("10.80.0.1"), Lease: 10 * time.Minute, Unknown: UnknownEnrol},
		},
	})

	relayLog := &syncBuffer{}
	relay := exec.Command("ip", "netns", "exec", relayNS, "dhcrelay", "-4", "-d", "-a", "--no-pid", "-iu", nsClientIf, "-id", "rl0", nsServerIP)
	relay.Stdout, relay.Stderr = relayLog, relayLog
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = relay.Process.Kill()
		_ = relay.Wait()
		t.Logf("dhcrelay:\n%s", relayLog.String())
	})

	l := udhcpc(t, client)
	got, err := netip.ParseAddr(l.ip)
	if err != nil || got.Compare(netip.MustParseAddr("10.80.0.100")) < 0 || got.Compare(netip.MustParseAddr("10.80.0.109")) > 0 {
		t.Fatalf("leased %q through the relay, want an address of r10's pool (variables %v)", l.ip, l.vars)
	}
	if l.vars["router"] != "10.80.0.1" || l.vars["mask"] != "24" || l.nextServer != nsServerIP {
		t.Errorf("router %q mask %q next-server %q; want r10's 10.80.0.1, 24 and %s", l.vars["router"], l.vars["mask"], l.nextServer, nsServerIP)
	}
	if !strings.Contains(svc.log.String(), `relay=10.80.0.1 circuit_id="\"rl0\""`) {
		t.Error(`the server never logged a request relayed by 10.80.0.1 with option 82 circuit ID "rl0"`)
	}
	ds, err := OpenDiscovery(state)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := ds.Get(nsClientMAC); err != nil || d.Relay != "10.80.0.1" || d.Subnet != "r10" {
		t.Fatalf("discovery record %+v, %v; want relay 10.80.0.1 subnet r10", d, err)
	}
}
