package netboot

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	loopSubnet = Subnet{Name: "r01", Prefix: netip.MustParsePrefix("127.0.0.0/8"),
		PoolStart: netip.MustParseAddr("127.200.0.10"), PoolEnd: netip.MustParseAddr("127.200.0.11"),
		Router: netip.MustParseAddr("127.0.0.254"), Lease: 20 * time.Minute, Unknown: UnknownEnrol}
	relaySubnet = Subnet{Name: "r02", Prefix: netip.MustParsePrefix("10.50.0.0/24"),
		PoolStart: netip.MustParseAddr("10.50.0.100"), PoolEnd: netip.MustParseAddr("10.50.0.101"),
		Router: netip.MustParseAddr("10.50.0.1"), Lease: 30 * time.Minute, Unknown: UnknownEnrol}
)

// poolEnv starts a DHCP+HTTP service on loopback with the two subnets above
// (the reservation of knownMAC as in dhcpEnv) and a state directory; its
// log is also kept in the returned buffer.
func poolEnv(t *testing.T, stateDir string, mutate func(*Config)) (*testEnv, *net.UDPConn, *net.UDPAddr, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	env, conn, server := dhcpEnv(t, func(c *Config) {
		c.Subnets = []Subnet{loopSubnet, relaySubnet}
		c.DHCPStateDir = stateDir
		c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
		if mutate != nil {
			mutate(c)
		}
	})
	return env, conn, server, logs
}

func newMsg(t *testing.T, mac string, typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mustMAC(t, mac)), dhcpv4.WithMessageType(typ)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustReply(t *testing.T, conn *net.UDPConn, server *net.UDPAddr, m *dhcpv4.DHCPv4, want dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	t.Helper()
	r, _ := exchange(t, conn, server, m, 5*time.Second)
	if r == nil {
		t.Fatalf("%s from %s: no reply, want %s", m.MessageType(), m.ClientHWAddr, want)
	}
	if r.MessageType() != want {
		t.Fatalf("%s from %s: reply %s (%q), want %s", m.MessageType(), m.ClientHWAddr, r.MessageType(), r.Message(), want)
	}
	return r
}

func noReply(t *testing.T, conn *net.UDPConn, server *net.UDPAddr, m *dhcpv4.DHCPv4) {
	t.Helper()
	if r, _ := exchange(t, conn, server, m, 300*time.Millisecond); r != nil {
		t.Fatalf("%s from %s: reply %s, want none", m.MessageType(), m.ClientHWAddr, r.MessageType())
	}
}

func poolLeases(env *testEnv) map[string]Lease {
	out := map[string]Lease{}
	for _, l := range env.svc.dhcp.pool.Leases() {
		out[l.IP.String()] = l
	}
	return out
}

// TestDHCPPoolRFC walks the RFC 2131 paths of a pool of two addresses.
func TestDHCPPoolRFC(t *testing.T) {
	env, conn, server, logs := poolEnv(t, t.TempDir(), nil)
	macA, macB, macC := "02:52:46:0f:00:0a", "02:52:46:0f:00:0b", "02:52:46:0f:00:0c"
	serverIP := net.IPv4(127, 0, 0, 1).To4()
	var ipA, ipB net.IP

	t.Run("DISCOVER → OFFER with lease, T1, T2 and boot file", func(t *testing.T) {
		o := mustReply(t, conn, server, discover(t, macA), dhcpv4.MessageTypeOffer)
		ipA = o.YourIPAddr
		checks := []struct {
			what      string
			got, want any
		}{
			{"yiaddr in the pool", loopSubnet.inPool(netip.MustParseAddr(ipA.String())), true},
			{"option 51", o.IPAddressLeaseTime(0), 20 * time.Minute},
			{"option 58 (T1)", o.IPAddressRenewalTime(0), 10 * time.Minute},
			{"option 59 (T2)", o.IPAddressRebindingTime(0), 17*time.Minute + 30*time.Second},
			{"option 1", o.SubnetMask().String(), net.CIDRMask(8, 32).String()},
			{"option 3", len(o.Router()) == 1 && o.Router()[0].Equal(net.IPv4(127, 0, 0, 254)), true},
			{"option 54", o.ServerIdentifier().String(), serverIP.String()},
			{"siaddr", o.ServerIPAddr.String(), serverIP.String()},
			{"file", o.BootFileName, "undionly.kpxe"},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
			}
		}
	})
	t.Run("REQUEST (SELECTING) → ACK", func(t *testing.T) {
		req := newMsg(t, macA, dhcpv4.MessageTypeRequest,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipA)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)))
		a := mustReply(t, conn, server, req, dhcpv4.MessageTypeAck)
		if !a.YourIPAddr.Equal(ipA) || a.IPAddressLeaseTime(0) != 20*time.Minute {
			t.Fatalf("ACK yiaddr %v lease %v", a.YourIPAddr, a.IPAddressLeaseTime(0))
		}
		if l := poolLeases(env)[ipA.String()]; l.State != "bound" || l.MAC != macA {
			t.Fatalf("lease after ACK: %+v", l)
		}
	})
	t.Run("REQUEST (RENEWING, ciaddr) → ACK", func(t *testing.T) {
		mustReply(t, conn, server, newMsg(t, macA, dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(ipA)), dhcpv4.MessageTypeAck)
	})
	t.Run("REQUEST for another MAC's address → NAK", func(t *testing.T) {
		n := mustReply(t, conn, server, newMsg(t, macB, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipA))), dhcpv4.MessageTypeNak)
		if !n.YourIPAddr.IsUnspecified() {
			t.Fatalf("NAK yiaddr %v", n.YourIPAddr)
		}
	})
	t.Run("REQUEST for an address on another network → NAK", func(t *testing.T) {
		mustReply(t, conn, server, newMsg(t, macA, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 0, 2, 7)))), dhcpv4.MessageTypeNak)
	})
	t.Run("REQUEST for a non-pool address of the network → NAK", func(t *testing.T) {
		mustReply(t, conn, server, newMsg(t, macA, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(127, 9, 9, 9)))), dhcpv4.MessageTypeNak)
	})
	t.Run("REQUEST naming another server → silence", func(t *testing.T) {
		noReply(t, conn, server, newMsg(t, macA, dhcpv4.MessageTypeRequest,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipA)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(127, 0, 0, 9)))))
	})
	t.Run("INFORM → ACK without yiaddr or lease time", func(t *testing.T) {
		a := mustReply(t, conn, server, newMsg(t, macA, dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(ipA)), dhcpv4.MessageTypeAck)
		if !a.YourIPAddr.IsUnspecified() || a.Options.Has(dhcpv4.OptionIPAddressLeaseTime) ||
			a.Options.Has(dhcpv4.OptionRenewTimeValue) || a.Options.Has(dhcpv4.OptionRebindingTimeValue) {
			t.Fatalf("INFORM ACK yiaddr %v, options %v", a.YourIPAddr, a.Options)
		}
		if a.SubnetMask().String() != net.CIDRMask(8, 32).String() || a.BootFileName != "undionly.kpxe" {
			t.Fatalf("INFORM ACK mask %v file %q", a.SubnetMask(), a.BootFileName)
		}
		if l := poolLeases(env)[ipA.String()]; l.MAC != macA || l.State != "bound" {
			t.Fatalf("INFORM changed the lease: %+v", l)
		}
	})
	t.Run("INFORM from a foreign address → silence", func(t *testing.T) {
		noReply(t, conn, server, newMsg(t, macB, dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 9))))
	})
	t.Run("second MAC gets the other address", func(t *testing.T) {
		o := mustReply(t, conn, server, discover(t, macB), dhcpv4.MessageTypeOffer)
		ipB = o.YourIPAddr
		if ipB.Equal(ipA) {
			t.Fatalf("both MACs offered %v", ipA)
		}
		mustReply(t, conn, server, newMsg(t, macB, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipB))), dhcpv4.MessageTypeAck)
	})
	t.Run("pool exhausted → no OFFER, logged", func(t *testing.T) {
		noReply(t, conn, server, discover(t, macC))
		if !strings.Contains(logs.String(), "address pool exhausted") {
			t.Fatal("no log line says the pool is exhausted")
		}
	})
	t.Run("RELEASE frees the address", func(t *testing.T) {
		noReply(t, conn, server, newMsg(t, macA, dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(ipA), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP))))
		if l := poolLeases(env)[ipA.String()]; l.State != "released" {
			t.Fatalf("after RELEASE: %+v", l)
		}
		o := mustReply(t, conn, server, discover(t, macC), dhcpv4.MessageTypeOffer)
		if !o.YourIPAddr.Equal(ipA) {
			t.Fatalf("third MAC offered %v, want the released %v", o.YourIPAddr, ipA)
		}
	})
	t.Run("DECLINE quarantines the address", func(t *testing.T) {
		noReply(t, conn, server, newMsg(t, macB, dhcpv4.MessageTypeDecline, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipB))))
		if l := poolLeases(env)[ipB.String()]; l.State != "quarantined" || l.MAC != "" {
			t.Fatalf("after DECLINE: %+v", l)
		}
		noReply(t, conn, server, newMsg(t, macB, dhcpv4.MessageTypeDiscover))
		mustReply(t, conn, server, newMsg(t, macB, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipB))), dhcpv4.MessageTypeNak)
	})
	t.Run("reservations are answered and never pooled", func(t *testing.T) {
		o := mustReply(t, conn, server, discover(t, knownMAC), dhcpv4.MessageTypeOffer)
		if !o.YourIPAddr.Equal(reservedIP) || o.IPAddressRenewalTime(0) != time.Hour {
			t.Fatalf("reserved MAC offered %v T1 %v", o.YourIPAddr, o.IPAddressRenewalTime(0))
		}
	})
}

func TestDHCPUnknownMACPolicy(t *testing.T) {
	t.Run("enrol: recorded, chained to the discovery script", func(t *testing.T) {
		state := t.TempDir()
		env, conn, server, _ := poolEnv(t, state, nil)
		mac := "02:52:46:0f:00:21"
		o := mustReply(t, conn, server, discover(t, mac, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007")), dhcpv4.WithUserClass("iPXE", false)), dhcpv4.MessageTypeOffer)
		if want := env.svc.HTTPBase() + "/discover/" + mac + ".ipxe"; o.BootFileName != want {
			t.Fatalf("iPXE boot file %q, want %q", o.BootFileName, want)
		}
		ds, err := OpenDiscovery(state)
		if err != nil {
			t.Fatal(err)
		}
		d, err := ds.Get(mac)
		if err != nil {
			t.Fatal(err)
		}
		if d.Arch != 7 || d.Subnet != "r01" || d.IP != o.YourIPAddr.String() || d.Vendor != "PXEClient:Arch:00007" || d.FirstSeen.IsZero() || d.Relay != "" {
			t.Fatalf("discovery record %+v", d)
		}
		script := httpGet(t, env.svc.HTTPBase()+"/discover/"+strings.ToUpper(mac)+".ipxe", 200)
		if !strings.HasPrefix(script, "#!ipxe\n") || !strings.Contains(script, "chain --replace --autofree "+env.svc.HTTPBase()+"/discover/"+mac+".ipxe") {
			t.Fatalf("discovery script:\n%s", script)
		}
		httpGet(t, env.svc.HTTPBase()+"/discover/not-a-mac.ipxe", 400)
	})
	t.Run("enrol with the rack's discovery profile: the identify agent, until it is removed", func(t *testing.T) {
		env, conn, server, _ := poolEnv(t, t.TempDir(), nil)
		mac := "02:52:46:0f:00:23"
		args := IdentifyArgs{URL: env.svc.HTTPBase() + "/v1/identify", Scope: "r01", Token: MintIdentifyToken([]byte("k"), "r01")}
		if err := env.svc.Store().PutRackProfile("r01", Profile{Node: "ignored", Mode: ModeInstall, Kernel: "vmlinuz", Initrd: "initrd.img", Args: args.Encode()}); err != nil {
			t.Fatal(err)
		}
		o := mustReply(t, conn, server, discover(t, mac, dhcpv4.WithUserClass("iPXE", false)), dhcpv4.MessageTypeOffer)
		if want := env.svc.HTTPBase() + "/discover/" + mac + ".ipxe"; o.BootFileName != want {
			t.Fatalf("boot file %q, want %q", o.BootFileName, want)
		}
		script := httpGet(t, o.BootFileName, 200)
		want := "kernel " + env.svc.HTTPBase() + "/artifacts/vmlinuz initrd=initrd.img " + strings.Join(args.Encode(), " ") + "\n"
		if !strings.Contains(script, want) || !strings.Contains(script, "\nboot\n") {
			t.Fatalf("discovery script with the rack profile:\n%s\nwant the line %q", script, want)
		}
		words := strings.Fields(strings.SplitN(strings.SplitN(script, "\n", 3)[1], "\n", 2)[0])
		if got, err := ParseIdentifyArgs(words); err != nil || got != args {
			t.Fatalf("identify args from the script: %+v, %v", got, err)
		}
		if err := env.svc.Store().DeleteRackProfile("r01"); err != nil {
			t.Fatal(err)
		}
		if script := httpGet(t, o.BootFileName, 200); !strings.Contains(script, "chain --replace --autofree "+env.svc.HTTPBase()+"/discover/"+mac+".ipxe") {
			t.Fatalf("after the rack profile is removed:\n%s", script)
		}
		// Adopted (its own profile): the retried script boots it, before
		// any rack profile.
		if err := env.svc.Store().PutRackProfile("r01", Profile{Mode: ModeInstall, Kernel: "vmlinuz", Args: args.Encode()}); err != nil {
			t.Fatal(err)
		}
		if err := env.svc.Store().Put(Profile{MAC: mac, Node: "r01n07", Mode: ModeLocal}); err != nil {
			t.Fatal(err)
		}
		if script := httpGet(t, o.BootFileName, 200); script != "#!ipxe\nexit\n" {
			t.Fatalf("with the MAC's own (local) profile:\n%s", script)
		}
		if err := env.svc.Store().Delete(mac); err != nil {
			t.Fatal(err)
		}
		if err := env.svc.Store().DeleteRackProfile("r01"); err != nil {
			t.Fatal(err)
		}
		// Another rack's profile is not served to r01's machines.
		if err := env.svc.Store().PutRackProfile("r02", Profile{Mode: ModeInstall, Kernel: "vmlinuz", Args: args.Encode()}); err != nil {
			t.Fatal(err)
		}
		if script := httpGet(t, o.BootFileName, 200); strings.Contains(script, "kernel ") {
			t.Fatalf("r02's profile served to an r01 machine:\n%s", script)
		}
	})
	t.Run("a MAC with a boot profile (identify mode) is served from the pool", func(t *testing.T) {
		env, conn, server, _ := poolEnv(t, t.TempDir(), func(c *Config) {
			c.Subnets = []Subnet{loopSubnet}
			c.Subnets[0].Unknown = UnknownIgnore
		})
		mac := "02:52:46:0f:00:22"
		noReply(t, conn, server, discover(t, mac))
		if err := env.svc.Store().Put(Profile{MAC: mac, Mode: ModeLocal}); err != nil {
			t.Fatal(err)
		}
		o := mustReply(t, conn, server, discover(t, mac, dhcpv4.WithUserClass("iPXE", false)), dhcpv4.MessageTypeOffer)
		if want := env.svc.HTTPBase() + "/boot/" + mac + ".ipxe"; o.BootFileName != want {
			t.Fatalf("boot file %q, want %q", o.BootFileName, want)
		}
	})
	t.Run("ignore: no answer, no record", func(t *testing.T) {
		state := t.TempDir()
		_, conn, server, _ := poolEnv(t, state, func(c *Config) {
			c.Subnets = []Subnet{loopSubnet}
			c.Subnets[0].Unknown = UnknownIgnore
		})
		noReply(t, conn, server, discover(t, "02:52:46:0f:00:23"))
		ds, _ := OpenDiscovery(state)
		if l, err := ds.List(); err != nil || len(l) != 0 {
			t.Fatalf("records %v, %v", l, err)
		}
	})
}

func httpGet(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, want)
	}
	return string(b)
}

// TestDHCPPoolRestart: a new service on the same state directory keeps the
// leases (the MAC gets its address back, another MAC does not get it).
func TestDHCPPoolRestart(t *testing.T) {
	state := t.TempDir()
	mac, other := "02:52:46:0f:00:31", "02:52:46:0f:00:32"
	var ip net.IP
	{
		env, conn, server, _ := poolEnv(t, state, nil)
		o := mustReply(t, conn, server, discover(t, mac), dhcpv4.MessageTypeOffer)
		ip = o.YourIPAddr
		mustReply(t, conn, server, newMsg(t, mac, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))), dhcpv4.MessageTypeAck)
		stopService(t, env)
	}
	_, conn, server, _ := poolEnv(t, state, nil)
	o := mustReply(t, conn, server, discover(t, other, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))), dhcpv4.MessageTypeOffer)
	if o.YourIPAddr.Equal(ip) {
		t.Fatalf("after a restart another MAC was offered %v", ip)
	}
	mustReply(t, conn, server, newMsg(t, other, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))), dhcpv4.MessageTypeNak)
	// INIT-REBOOT: the client asks for the address it remembers.
	a := mustReply(t, conn, server, newMsg(t, mac, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))), dhcpv4.MessageTypeAck)
	if !a.YourIPAddr.Equal(ip) {
		t.Fatalf("after a restart %s got %v, want %v", mac, a.YourIPAddr, ip)
	}
}

// stopService stops env's service now (its cleanup is then a no-op).
func stopService(t *testing.T, env *testEnv) {
	t.Helper()
	env.stop()
}

// TestDHCPRelay answers requests relayed from a second subnet: the pool of
// the subnet holding giaddr, the reply to giaddr:67 with giaddr and
// option 82 (RFC 3046) unchanged.
func TestDHCPRelay(t *testing.T) {
	env, _, _, _ := poolEnv(t, t.TempDir(), nil)
	d := env.svc.dhcp
	giaddr := net.IPv4(10, 50, 0, 1).To4()
	agent := dhcpv4.OptRelayAgentInfo(
		dhcpv4.OptGeneric(dhcpv4.AgentCircuitIDSubOption, []byte("ge-0/0/7.0")),
		dhcpv4.OptGeneric(dhcpv4.AgentRemoteIDSubOption, []byte{0x02, 0x52, 0x46, 0, 0, 1}))
	relayPeer := &net.UDPAddr{IP: giaddr, Port: dhcpv4.ServerPort}
	relayed := func(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		m.GatewayIPAddr = giaddr
		m.HopCount = 1
		m.UpdateOption(agent)
		return m
	}
	mac := "02:52:46:0f:00:41"
	check := func(t *testing.T, r *dhcpv4.DHCPv4, want dhcpv4.MessageType) {
		t.Helper()
		if r == nil || r.MessageType() != want {
			t.Fatalf("reply %v, want %s", r, want)
		}
		if !r.GatewayIPAddr.Equal(giaddr) {
			t.Errorf("giaddr %v, want %v", r.GatewayIPAddr, giaddr)
		}
		if got := r.Options.Get(dhcpv4.OptionRelayAgentInformation); !bytes.Equal(got, agent.Value.ToBytes()) {
			t.Errorf("option 82 %x, want %x", got, agent.Value.ToBytes())
		}
		if dst := replyAddr(relayPeer, r); dst.String() != "10.50.0.1:67" {
			t.Errorf("reply goes to %v, want the relay 10.50.0.1:67", dst)
		}
	}
	o, _ := d.respond(relayPeer, relayed(discover(t, mac)), false)
	check(t, o, dhcpv4.MessageTypeOffer)
	if !relaySubnet.inPool(netip.MustParseAddr(o.YourIPAddr.String())) || o.SubnetMask().String() != net.CIDRMask(24, 32).String() ||
		!o.Router()[0].Equal(net.IPv4(10, 50, 0, 1)) || o.IPAddressLeaseTime(0) != 30*time.Minute {
		t.Fatalf("relayed OFFER %v mask %v router %v lease %v: not from subnet r02", o.YourIPAddr, o.SubnetMask(), o.Router(), o.IPAddressLeaseTime(0))
	}
	a, _ := d.respond(relayPeer, relayed(newMsg(t, mac, dhcpv4.MessageTypeRequest,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o.YourIPAddr)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(env.svc.ServerIP())))), false)
	check(t, a, dhcpv4.MessageTypeAck)
	n, _ := d.respond(relayPeer, relayed(newMsg(t, mac, dhcpv4.MessageTypeRequest,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(127, 200, 0, 10))))), false)
	check(t, n, dhcpv4.MessageTypeNak)
	if !n.IsBroadcast() {
		t.Error("relayed NAK without the broadcast flag (RFC 2131 §4.3.2)")
	}
	unknownNet := relayed(discover(t, mac))
	unknownNet.GatewayIPAddr = net.IPv4(172, 16, 0, 1)
	if r, _ := d.respond(&net.UDPAddr{IP: unknownNet.GatewayIPAddr, Port: 67}, unknownNet, false); r != nil {
		t.Fatalf("relay from a subnet we do not serve got %s", r.MessageType())
	}
}

// TestDHCPProxy runs the service in proxyDHCP mode: PXE clients get boot
// information without an address on port 67 and on the PXE port; nothing
// else is answered.
func TestDHCPProxy(t *testing.T) {
	env, conn, server, _ := poolEnv(t, t.TempDir(), func(c *Config) {
		c.DHCPMode = DHCPModeProxy
		c.PXEAddr = "127.0.0.1:0"
		c.Subnets = []Subnet{{Name: "r01", Prefix: netip.MustParsePrefix("127.0.0.0/8"), Unknown: UnknownEnrol}}
	})
	pxe, err := net.ResolveUDPAddr("udp4", env.svc.PXEAddr())
	if err != nil {
		t.Fatal(err)
	}
	uuid := append([]byte{0}, bytes.Repeat([]byte{0xab}, 16)...)
	pxeClient := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, uuid)}
	checkProxy := func(t *testing.T, r *dhcpv4.DHCPv4, file string) {
		t.Helper()
		switch {
		case !r.YourIPAddr.IsUnspecified():
			t.Errorf("proxy answer carries yiaddr %v", r.YourIPAddr)
		case r.Options.Has(dhcpv4.OptionIPAddressLeaseTime), r.Options.Has(dhcpv4.OptionSubnetMask), r.Options.Has(dhcpv4.OptionRouter):
			t.Errorf("proxy answer carries lease/mask/router: %v", r.Options)
		case r.BootFileName != file || r.BootFileNameOption() != file:
			t.Errorf("boot file %q / option 67 %q, want %q", r.BootFileName, r.BootFileNameOption(), file)
		case r.ClassIdentifier() != "PXEClient" || !bytes.Equal(r.Options.Get(dhcpv4.OptionVendorSpecificInformation), pxeVendorOptions):
			t.Errorf("options 60/43: %q %x", r.ClassIdentifier(), r.Options.Get(dhcpv4.OptionVendorSpecificInformation))
		case !bytes.Equal(r.Options.Get(dhcpv4.OptionClientMachineIdentifier), uuid):
			t.Errorf("option 97 not echoed: %x", r.Options.Get(dhcpv4.OptionClientMachineIdentifier))
		case !r.ServerIPAddr.Equal(env.svc.ServerIP()):
			t.Errorf("siaddr %v", r.ServerIPAddr)
		}
	}
	t.Run("PXE DISCOVER → OFFER with boot information only", func(t *testing.T) {
		checkProxy(t, mustReply(t, conn, server, discover(t, knownMAC, pxeClient...), dhcpv4.MessageTypeOffer), "ipxe.efi")
	})
	t.Run("REQUEST on the PXE port → ACK", func(t *testing.T) {
		req := newMsg(t, knownMAC, dhcpv4.MessageTypeRequest, append(pxeClient, dhcpv4.WithClientIP(reservedIP))...)
		checkProxy(t, mustReply(t, conn, pxe, req, dhcpv4.MessageTypeAck), "ipxe.efi")
	})
	t.Run("not a PXE client → silence", func(t *testing.T) {
		noReply(t, conn, server, discover(t, knownMAC))
	})
	t.Run("REQUEST to the site server on port 67 → silence", func(t *testing.T) {
		noReply(t, conn, server, newMsg(t, knownMAC, dhcpv4.MessageTypeRequest, append(pxeClient,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(reservedIP)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(127, 0, 0, 9))))...))
	})
	t.Run("DISCOVER on the PXE port → silence", func(t *testing.T) {
		noReply(t, conn, pxe, discover(t, knownMAC, pxeClient...))
	})
	t.Run("unknown MAC under enrol: discovery script", func(t *testing.T) {
		mac := "02:52:46:0f:00:51"
		o := mustReply(t, conn, server, discover(t, mac, append(pxeClient, dhcpv4.WithUserClass("iPXE", false))...), dhcpv4.MessageTypeOffer)
		checkProxy(t, o, env.svc.HTTPBase()+"/discover/"+mac+".ipxe")
	})
}

func TestDHCPConfigErrors(t *testing.T) {
	base := func() Config {
		return Config{DHCPAddr: "127.0.0.1:0", Reservations: StaticReservations{}, DHCPStateDir: t.TempDir()}
	}
	sub := func(mut func(*Subnet)) []Subnet {
		s := loopSubnet
		mut(&s)
		return []Subnet{s}
	}
	tests := []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"bad mode", func(c *Config) { c.DHCPMode = "relay" }, `DHCPMode "relay"`},
		{"PXE port outside proxy mode", func(c *Config) { c.PXEAddr = "127.0.0.1:4011" }, "PXEAddr is only served"},
		{"bad PXE address", func(c *Config) { c.DHCPMode = DHCPModeProxy; c.PXEAddr = "nowhere" }, "PXEAddr"},
		{"bad subnet name", func(c *Config) { c.Subnets = sub(func(s *Subnet) { s.Name = "R 1" }) }, "invalid name"},
		{"IPv6 prefix", func(c *Config) {
			c.Subnets = sub(func(s *Subnet) { s.Prefix = netip.MustParsePrefix("2001:db8::/64") })
		}, "not an IPv4 prefix"},
		{"pool outside", func(c *Config) {
			c.Subnets = sub(func(s *Subnet) { s.PoolEnd = netip.MustParseAddr("128.0.0.1") })
		}, "not inside"},
		{"pool reversed", func(c *Config) {
			c.Subnets = sub(func(s *Subnet) { s.PoolStart, s.PoolEnd = s.PoolEnd, s.PoolStart })
		}, "after its end"},
		{"pool without end", func(c *Config) { c.Subnets = sub(func(s *Subnet) { s.PoolEnd = netip.Addr{} }) }, "both a start and an end"},
		{"pool with the broadcast address", func(c *Config) {
			c.Subnets = sub(func(s *Subnet) { s.PoolEnd = netip.MustParseAddr("127.255.255.255") })
		}, "broadcast"},
		{"bad policy", func(c *Config) { c.Subnets = sub(func(s *Subnet) { s.Unknown = "adopt" }) }, "unknown-MAC policy"},
		{"overlapping pools", func(c *Config) {
			c.Subnets = []Subnet{loopSubnet, loopSubnet}
			c.Subnets[1].Name = "r09"
		}, "overlap"},
		{"pool without state dir", func(c *Config) { c.Subnets = []Subnet{loopSubnet}; c.DHCPStateDir = "" }, "DHCPStateDir is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mut(&c)
			if _, err := New(c); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	t.Run("second service on the same state directory", func(t *testing.T) {
		c := base()
		c.Subnets = []Subnet{loopSubnet}
		first, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- first.Run(ctx) }()
		t.Cleanup(awaitRunning(t, first, cancel, done))
		second, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := second.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "another netboot service") {
			t.Fatalf("second Run: %v, want the lock error", err)
		}
	})
}

// TestDHCPReservationHeldByPool: a reservation added (inventory reload)
// for an address the pool has leased to another MAC is not answered until
// that lease ends: the address never has two holders.
func TestDHCPReservationHeldByPool(t *testing.T) {
	env, conn, server, logs := poolEnv(t, t.TempDir(), func(c *Config) { c.Reservations = StaticReservations{} })
	macA, macB := "02:52:46:0f:00:61", "02:52:46:0f:00:62"
	o := mustReply(t, conn, server, discover(t, macA), dhcpv4.MessageTypeOffer)
	mustReply(t, conn, server, newMsg(t, macA, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o.YourIPAddr))), dhcpv4.MessageTypeAck)
	// The reservation appears (as after an inventory reload): a server with
	// the new table and the same pool.
	s := env.svc.dhcp
	d := &dhcpServer{res: StaticReservations{macB: {Node: "r01n07", Rack: "r01", IP: o.YourIPAddr}}, serverIP: s.serverIP,
		bootFiles: s.bootFiles, httpBase: s.httpBase, log: s.log, subnets: s.subnets, pool: s.pool}
	if reply, _ := d.respond(&net.UDPAddr{IP: net.IPv4zero, Port: 68}, discover(t, macB), false); reply != nil {
		t.Fatalf("reservation of an address leased to %s answered: %s %v", macA, reply.MessageType(), reply.YourIPAddr)
	}
	if !strings.Contains(logs.String(), "leased from the pool to another MAC") {
		t.Fatal("the conflict was not logged")
	}
}
