package netboot

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/vishvananda/netns"
)

// TestRealClientProxyDHCP runs the service in proxyDHCP mode beside a site
// DHCP server (busybox udhcpd) on one Ethernet segment (a bridge in a
// namespace of its own, with the proxy, the site server and the client
// each in theirs). A PXE client's DISCOVER (built with the library's raw-
// socket client, nclient4: the Debian DHCP clients do not speak PXE) gets
// two offers: the site's address, and the proxy's boot information without
// an address; with the site's address configured, its REQUEST to the
// proxy's port 4011 gets an ACK with the same boot information.
func TestRealClientProxyDHCP(t *testing.T) {
	requireRealClients(t, "busybox")
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	base := "rfpx-" + hex.EncodeToString(suffix)
	proxyNS, siteNS, clientNS, brNS := base, base+"-s", base+"-c", base+"-b"
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{proxyNS, siteNS, clientNS, brNS} {
		ip("netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		ip("-n", ns, "link", "set", "lo", "up")
	}
	ip("-n", brNS, "link", "add", "br0", "type", "bridge")
	ip("-n", brNS, "link", "set", "br0", "up")
	for _, p := range []struct{ ns, ifname, port, addr, mac string }{
		{proxyNS, "px0", "bp", nsServerIP + nsPrefix, ""},
		{siteNS, "site0", "bs", "10.79.0.3" + nsPrefix, ""},
		{clientNS, nsClientIf, "bc", "", nsClientMAC},
	} {
		ip("-n", brNS, "link", "add", p.port, "type", "veth", "peer", "name", p.ifname, "netns", p.ns)
		ip("-n", brNS, "link", "set", p.port, "master", "br0")
		ip("-n", brNS, "link", "set", p.port, "up")
		if p.mac != "" {
			ip("-n", p.ns, "link", "set", p.ifname, "address", p.mac)
		}
		if p.addr != "" {
			ip("-n", p.ns, "addr", "add", p.addr, "dev", p.ifname)
		}
		ip("-n", p.ns, "link", "set", p.ifname, "up")
	}
	ip("-n", proxyNS, "route", "add", "default", "dev", "px0")

	// The site DHCP server.
	dir := t.TempDir()
	conf := filepath.Join(dir, "udhcpd.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("start 10.79.0.150\nend 10.79.0.160\ninterface site0\nlease_file %s\npidfile %s\noption subnet 255.255.255.0\noption lease 600\n",
		filepath.Join(dir, "udhcpd.leases"), filepath.Join(dir, "udhcpd.pid"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "udhcpd.leases"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	siteLog := &syncBuffer{}
	site := exec.Command("ip", "netns", "exec", siteNS, "busybox", "udhcpd", "-f", conf)
	site.Stdout, site.Stderr = siteLog, siteLog
	if err := site.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = site.Process.Kill()
		_ = site.Wait()
		t.Logf("udhcpd:\n%s", siteLog.String())
	})

	// The proxy.
	n := &nsNet{server: proxyNS, client: clientNS}
	n.startService(t, Config{
		DHCPAddr: "0.0.0.0:67", PXEAddr: "0.0.0.0:4011", DHCPMode: DHCPModeProxy, ServerIP: nsServerIP,
		Reservations: StaticReservations{nsClientMAC: {Node: "r09n01", Rack: "r09", IP: net.ParseIP("10.79.0.50").To4()}},
	})

	uuid := append([]byte{0}, bytes.Repeat([]byte{0x5a}, 16)...)
	pxe := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, uuid),
	}
	type result struct {
		site, proxy, ack *dhcpv4.DHCPv4
		err              error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread stays in the client namespace
		var r result
		defer func() { done <- r }()
		h, err := netns.GetFromName(clientNS)
		if err != nil {
			r.err = err
			return
		}
		err = netns.Set(h)
		h.Close()
		if err != nil {
			r.err = err
			return
		}
		r.site, r.proxy, r.err = pxeDiscover(nsClientIf, pxe)
		if r.err != nil {
			return
		}
		// The client takes the site's address, then asks the proxy's boot
		// server (port 4011) from it, as PXE firmware does.
		if out, err := exec.Command("ip", "-n", clientNS, "addr", "add", r.site.YourIPAddr.String()+nsPrefix, "dev", nsClientIf).CombinedOutput(); err != nil {
			r.err = fmt.Errorf("ip addr add: %v: %s", err, out)
			return
		}
		r.ack, r.err = pxeBootRequest(r.site.YourIPAddr, mustMACNoT(nsClientMAC), pxe)
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("PXE client did not finish within 60s")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if ip := r.site.YourIPAddr.To4(); ip == nil || ip[3] < 150 || ip[3] > 160 || r.site.BootFileName != "" {
		t.Errorf("site offer yiaddr %v file %q: want an address of 10.79.0.150-160 and no boot file", r.site.YourIPAddr, r.site.BootFileName)
	}
	for _, c := range []struct {
		what string
		m    *dhcpv4.DHCPv4
		typ  dhcpv4.MessageType
	}{{"proxy offer", r.proxy, dhcpv4.MessageTypeOffer}, {"boot server ACK (port 4011)", r.ack, dhcpv4.MessageTypeAck}} {
		m := c.m
		switch {
		case m.MessageType() != c.typ:
			t.Errorf("%s: type %s, want %s", c.what, m.MessageType(), c.typ)
		case !m.YourIPAddr.IsUnspecified() || m.Options.Has(dhcpv4.OptionIPAddressLeaseTime):
			t.Errorf("%s carries an address: yiaddr %v, options %v", c.what, m.YourIPAddr, m.Options)
		case m.BootFileName != "ipxe.efi" || !m.ServerIPAddr.Equal(net.ParseIP(nsServerIP)) || m.ClassIdentifier() != "PXEClient":
			t.Errorf("%s: file %q siaddr %v option 60 %q; want ipxe.efi from %s, PXEClient", c.what, m.BootFileName, m.ServerIPAddr, m.ClassIdentifier(), nsServerIP)
		case !bytes.Equal(m.Options.Get(dhcpv4.OptionVendorSpecificInformation), pxeVendorOptions) || !bytes.Equal(m.Options.Get(dhcpv4.OptionClientMachineIdentifier), uuid):
			t.Errorf("%s: option 43 %x / 97 %x", c.what, m.Options.Get(dhcpv4.OptionVendorSpecificInformation), m.Options.Get(dhcpv4.OptionClientMachineIdentifier))
		}
	}
}

func mustMACNoT(s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

// pxeDiscover broadcasts a PXE DISCOVER on iface and collects the first
// offer with an address (the site server's) and the first without (the
// proxy's), within 20 s.
func pxeDiscover(iface string, mods []dhcpv4.Modifier) (site, proxy *dhcpv4.DHCPv4, err error) {
	c, err := nclient4.New(iface, nclient4.WithTimeout(5*time.Second), nclient4.WithRetry(3))
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	disc, err := dhcpv4.NewDiscovery(c.InterfaceAddr(), append(mods, dhcpv4.WithBroadcast(true))...)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = c.SendAndRead(ctx, nclient4.DefaultServers, disc, func(m *dhcpv4.DHCPv4) bool {
		if m.MessageType() != dhcpv4.MessageTypeOffer {
			return false
		}
		if m.YourIPAddr.IsUnspecified() {
			if proxy == nil {
				proxy = m
			}
		} else if site == nil {
			site = m
		}
		return site != nil && proxy != nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("PXE DISCOVER: site offer %v, proxy offer %v: %w", site != nil, proxy != nil, err)
	}
	return site, proxy, nil
}

// pxeBootRequest sends the PXE boot-server REQUEST from ciaddr:68 to the
// proxy's port 4011 and waits up to 10 s for its ACK.
func pxeBootRequest(ciaddr net.IP, mac net.HardwareAddr, mods []dhcpv4.Modifier) (*dhcpv4.DHCPv4, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ciaddr, Port: dhcpv4.ClientPort})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	req, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(ciaddr)}, mods...)...)
	if err != nil {
		return nil, err
	}
	if _, err := conn.WriteToUDP(req.ToBytes(), &net.UDPAddr{IP: net.ParseIP(nsServerIP), Port: PXEPort}); err != nil {
		return nil, err
	}
	buf := make([]byte, 1500)
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			return nil, fmt.Errorf("PXE boot-server REQUEST: %w", err)
		}
		if m, err := dhcpv4.FromBytes(buf[:n]); err == nil && m.TransactionID == req.TransactionID {
			return m, nil
		}
	}
}
