package netboot

import (
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Real DHCP clients against the dynamic pool: busybox udhcpc and ISC
// dhclient, their MAC unknown to the inventory, get a pool lease with the
// expected next-server and boot file; after a restart of the service on the
// same state directory the MAC gets its address back and another MAC does
// not; `dhclient -r` releases the lease.

const (
	nsPoolFirst = "10.79.0.100"
	nsPoolLast  = "10.79.0.109"
	nsOtherMAC  = "02:52:46:4e:42:02"
)

// nsPoolConfig is a DHCP-only Config for the namespace rig without
// reservations: subnet r09 (the veth's) with a pool and the enrol policy.
func nsPoolConfig(state string) Config {
	return Config{
		DHCPAddr:     "0.0.0.0:67",
		ServerIP:     nsServerIP,
		Reservations: StaticReservations{},
		Subnets: []Subnet{{Name: "r09", Prefix: netip.MustParsePrefix("10.79.0.0/24"),
			PoolStart: netip.MustParseAddr(nsPoolFirst), PoolEnd: netip.MustParseAddr(nsPoolLast),
			Router: netip.MustParseAddr(nsServerIP), Lease: 10 * time.Minute, Unknown: UnknownEnrol}},
		DHCPStateDir: state,
	}
}

// checkPoolLease checks a client's lease from nsPoolConfig's pool.
func checkPoolLease(t *testing.T, l dhcpLease, wantFile string) netip.Addr {
	t.Helper()
	ip, err := netip.ParseAddr(l.ip)
	if err != nil || ip.Compare(netip.MustParseAddr(nsPoolFirst)) < 0 || ip.Compare(netip.MustParseAddr(nsPoolLast)) > 0 {
		t.Fatalf("leased address %q is not in the pool %s-%s (script variables: %v)", l.ip, nsPoolFirst, nsPoolLast, l.vars)
	}
	checks := []struct{ what, got, want string }{
		{"next-server (siaddr)", l.nextServer, nsServerIP},
		{"boot file (file field)", l.bootFile, wantFile},
		{"server identifier (option 54)", l.server, nsServerIP},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	return ip
}

// setClientMAC changes the client end's MAC (down, address, up).
func (n *nsNet) setClientMAC(t *testing.T, mac string) {
	t.Helper()
	for _, args := range [][]string{
		{"-n", n.client, "link", "set", nsClientIf, "down"},
		{"-n", n.client, "link", "set", nsClientIf, "address", mac},
		{"-n", n.client, "link", "set", nsClientIf, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("ip", "-n", n.client, "-o", "link", "show", nsClientIf).Output()
		if strings.Contains(string(out), "state UP") {
			return
		}
	}
}

// journalState returns the state of ip in the journal of state ("" when it
// has no record).
func journalState(t *testing.T, state string, ip netip.Addr) (string, string) {
	t.Helper()
	leases, err := ReadLeases(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		if l.IP == ip {
			return l.State, l.MAC
		}
	}
	return "", ""
}

func TestRealClientPoolUdhcpc(t *testing.T) {
	requireRealClients(t, "busybox")
	n := newNSNet(t, false)
	state := t.TempDir()
	cfg := nsPoolConfig(state)
	svc := n.startService(t, cfg)

	first := checkPoolLease(t, udhcpc(t, n, "-x", "0x5d:0007"), "ipxe.efi")
	if st, mac := journalState(t, state, first); st != "bound" || mac != nsClientMAC {
		t.Fatalf("journal after the lease: %s %s", st, mac)
	}
	ds, err := OpenDiscovery(state)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := ds.Get(nsClientMAC); err != nil || d.Arch != 7 || d.Subnet != "r09" {
		t.Fatalf("discovery record %+v, %v", d, err)
	}

	svc.stop()
	n.startService(t, cfg)
	n.setClientMAC(t, nsOtherMAC)
	other := checkPoolLease(t, udhcpc(t, n), "undionly.kpxe")
	if other == first {
		t.Fatalf("after a restart another MAC got %v, still leased to %s", first, nsClientMAC)
	}
	n.setClientMAC(t, nsClientMAC)
	if again := checkPoolLease(t, udhcpc(t, n), "undionly.kpxe"); again != first {
		t.Fatalf("after a restart %s got %v, want its lease %v", nsClientMAC, again, first)
	}
}

func TestRealClientPoolDhclient(t *testing.T) {
	requireRealClients(t, "dhclient")
	// The client end has an address (nsClientIP) so that dhclient -r can
	// send its unicast DHCPRELEASE.
	n := newNSNet(t, true)
	state := t.TempDir()
	cfg := nsPoolConfig(state)
	svc := n.startService(t, cfg)

	leases := t.TempDir()
	first := checkPoolLease(t, dhclient(t, n, leases, "send pxe-system-type 7;\n"), "ipxe.efi")
	svc.stop()
	n.startService(t, cfg)
	again := dhclient(t, n, leases, "send pxe-system-type 7;\n")
	if ip := checkPoolLease(t, again, "ipxe.efi"); ip != first || again.reason != "REBOOT" {
		t.Fatalf("after a restart: %v through %s, want %v through REBOOT (INIT-REBOOT with the remembered address)", ip, again.reason, first)
	}

	t.Run("dhclient -r releases", func(t *testing.T) {
		dir := t.TempDir()
		script := recordingScript(t, dir, "$reason")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := n.clientCmd(ctx, "dhclient", "-4", "-r", "-v", "-sf", script,
			"-lf", filepath.Join(leases, "dhclient.leases"), "-pf", filepath.Join(leases, "dhclient.pid"), nsClientIf).CombinedOutput()
		t.Logf("dhclient -r:\n%s", out)
		if err != nil {
			t.Fatalf("dhclient -r: %v", err)
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			st, _ := journalState(t, state, first)
			if st == "released" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lease of %v is %q after dhclient -r, want released", first, st)
			}
		}
	})
}
