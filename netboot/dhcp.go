package netboot

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"
)

// DefaultBootFiles maps the client architecture (DHCP option 93, RFC 4578)
// to the boot file a PXE ROM fetches over TFTP: 0 BIOS → undionly.kpxe,
// 7 and 9 x86-64 UEFI → ipxe.efi, 11 arm64 UEFI → ipxe-arm64.efi.
var DefaultBootFiles = map[uint16]string{
	uint16(iana.INTEL_X86PC): "undionly.kpxe",
	uint16(iana.EFI_X86_64):  "ipxe.efi",
	uint16(iana.EFI_BC):      "ipxe.efi",
	uint16(iana.EFI_ARM64):   "ipxe-arm64.efi",
}

// dhcpServer answers DHCPv4 (RFC 2131) in one of two modes.
//
// Reservation mode (the default) is an authoritative server: a MAC that
// Reservations knows gets its reservation (DISCOVER → OFFER, REQUEST → ACK,
// NAK when it asks for another address); any other MAC is served from the
// dynamic pool of its subnet (see Subnet) when it has a boot profile (an
// identify-mode machine) or its subnet's UnknownPolicy is UnknownEnrol,
// and ignored otherwise. Pool leases follow RFC 2131 §4.3: REQUEST in the
// SELECTING, INIT-REBOOT, RENEWING and REBINDING states, DHCPRELEASE,
// DHCPDECLINE (the address is quarantined) and DHCPINFORM (an ACK without
// yiaddr or lease time, §4.3.5).
//
// ProxyDHCP mode (PXE 2.1 §2.2.5) coexists with a site DHCP server: it
// answers only PXE clients (option 60 "PXEClient…"), with boot information
// and no address, on port 67 and on the PXE boot-server port 4011.
type dhcpServer struct {
	res       Reservations
	serverIP  net.IP            // 4-byte: siaddr, option 54, option 66
	bootFiles map[uint16]string // option 93 → boot file
	httpBase  func() string     // "http://host:port" or "" when HTTP is off
	log       *slog.Logger
	obs       *instruments // metrics and the client table; nil records nothing

	proxy      bool                  // proxyDHCP mode
	subnets    []Subnet              // validated; may be empty
	pool       *leasePool            // nil when no subnet has a pool
	discovery  *DiscoveryStore       // nil → unknown MACs are not recorded
	hasProfile func(mac string) bool // nil → no MAC has a boot profile

	seenMu sync.Mutex
	seen   map[string]discoverySighting // when each unknown MAC was last recorded

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

// serve runs server4 on conn until conn is closed, then waits for in-flight
// handlers. It returns the error that ended the read loop. pxePort marks the
// proxyDHCP boot-server socket (port 4011).
func (d *dhcpServer) serve(conn net.PacketConn, pxePort bool) error {
	handler := func(c net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) { d.handle(c, peer, m, pxePort) }
	srv, err := server4.NewServer("", nil, handler,
		server4.WithConn(conn), server4.WithLogger(dhcpLibLogger{d.log}))
	if err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	err = srv.Serve()
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.inflight.Wait()
	return err
}

// handle is the server4.Handler; it never panics on bad input.
func (d *dhcpServer) handle(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4, pxePort bool) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.inflight.Add(1)
	d.mu.Unlock()
	defer d.inflight.Done()
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("dhcp: handler panic, packet dropped", "peer", peer.String(), "panic", fmt.Sprint(r))
		}
	}()

	resp, log := d.respond(peer, m, pxePort)
	if resp == nil {
		return
	}
	dst := replyAddr(peer, m)
	if _, err := conn.WriteTo(resp.ToBytes(), dst); err != nil {
		log.Warn("dhcp: send reply failed", "type", resp.MessageType().String(), "dst", dst.String(), "err", err)
		return
	}
	d.record(m, resp)
	log.Info("dhcp: reply sent", "type", resp.MessageType().String(), "dst", dst.String(),
		"yiaddr", resp.YourIPAddr.String(), "bootfile", resp.BootFileName)
}

// respond builds the reply to m, or returns nil when m gets none.
func (d *dhcpServer) respond(peer net.Addr, m *dhcpv4.DHCPv4, pxePort bool) (*dhcpv4.DHCPv4, *slog.Logger) {
	log := d.log.With("peer", peer.String(), "xid", m.TransactionID.String())
	if m.OpCode != dhcpv4.OpcodeBootRequest {
		log.Debug("dhcp: ignoring non-request packet", "opcode", m.OpCode.String())
		return nil, log
	}
	if m.HWType != iana.HWTypeEthernet || len(m.ClientHWAddr) != 6 {
		log.Warn("dhcp: ignoring packet without a 6-byte Ethernet hardware address", "htype", m.HWType.String(), "hlen", len(m.ClientHWAddr))
		return nil, log
	}
	mac := m.ClientHWAddr
	log = log.With("mac", mac.String())
	if gi, ok := addrOf(m.GatewayIPAddr); ok {
		log = log.With("relay", gi.String())
		if rai := m.RelayAgentInfo(); rai != nil {
			log = log.With("circuit_id", fmt.Sprintf("%q", rai.Get(dhcpv4.AgentCircuitIDSubOption)))
		}
	}
	if d.proxy {
		return d.proxyRespond(m, pxePort, log)
	}
	typ := m.MessageType()
	switch typ {
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeRelease,
		dhcpv4.MessageTypeDecline, dhcpv4.MessageTypeInform:
	default:
		log.Debug("dhcp: ignoring message", "type", typ.String())
		return nil, log
	}
	res, reserved := d.res.Reservation(mac)
	if typ == dhcpv4.MessageTypeInform {
		return d.inform(m, res, reserved, log)
	}
	if !reserved {
		return d.poolRespond(m, log)
	}
	log = log.With(identity{node: res.Node, rack: res.Rack}.attrs()...)
	ip := res.IP.To4()
	if ip == nil {
		log.Error("dhcp: reservation has no IPv4 address, not answering", "ip", res.IP.String())
		return nil, log
	}
	switch typ {
	case dhcpv4.MessageTypeRelease:
		log.Info("dhcp: DHCPRELEASE of a reserved address (kept reserved)", "ciaddr", m.ClientIPAddr.String())
		return nil, log
	case dhcpv4.MessageTypeDecline:
		log.Error("dhcp: DHCPDECLINE of a reserved address: another host uses it", "requested", fmt.Sprint(m.RequestedIPAddress()))
		return nil, log
	}
	if a, ok := addrOf(ip); ok && d.pool != nil {
		if h := d.pool.holder(a); h != "" && h != mac.String() {
			log.Error("dhcp: reserved address is leased from the pool to another MAC until its lease ends; not answering",
				"ip", ip.String(), "holder", h)
			return nil, log
		}
	}
	if typ == dhcpv4.MessageTypeRequest {
		if sid := m.ServerIdentifier(); sid != nil && !sid.Equal(d.serverIP) {
			log.Debug("dhcp: REQUEST for another server", "server_id", sid.String())
			return nil, log
		}
		want := requestedAddr(m)
		if want == nil || !want.Equal(ip) {
			log.Info("dhcp: REQUEST for an address that is not the reservation, NAK", "requested", fmt.Sprint(want), "reserved", ip.String())
			return d.nak(m, "requested address is not reserved for this client", log)
		}
	}
	mask := res.Mask
	if mask == nil {
		mask = ip.DefaultMask()
	}
	lease := res.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	host := ""
	if res.Node != "" && ValidName(res.Node) == nil {
		host = res.Node
	}
	return d.leaseReply(m, replyType(typ), ip, mask, res.Router.To4(), lease, host, d.bootFile(m, "/boot/", res, log), log)
}

// record counts a sent reply by mode (proxy, the MAC's reservation or the
// pool) and, for an ACK with an address, enters the client in the client
// table that names TFTP and HTTP peers in logs.
func (d *dhcpServer) record(m, resp *dhcpv4.DHCPv4) {
	if d.obs == nil {
		return
	}
	res, reserved := d.res.Reservation(m.ClientHWAddr)
	mode := dhcpModePool
	switch {
	case d.proxy:
		mode = dhcpModeProxy
	case reserved:
		mode = dhcpModeReservation
	}
	d.obs.dhcpReply(mode, resp.MessageType())
	if resp.MessageType() != dhcpv4.MessageTypeAck || d.proxy || resp.YourIPAddr == nil || resp.YourIPAddr.IsUnspecified() {
		return
	}
	id := identity{mac: m.ClientHWAddr.String()}
	if reserved {
		id.node, id.rack = res.Node, res.Rack
	}
	d.obs.clients.bound(id, resp.YourIPAddr, resp.IPAddressLeaseTime(DefaultLease))
}

func replyType(req dhcpv4.MessageType) dhcpv4.MessageType {
	if req == dhcpv4.MessageTypeRequest {
		return dhcpv4.MessageTypeAck
	}
	return dhcpv4.MessageTypeOffer
}

// requestedAddr is the address a REQUEST asks for: option 50 (SELECTING,
// INIT-REBOOT), else ciaddr (RENEWING, REBINDING); nil when neither.
func requestedAddr(m *dhcpv4.DHCPv4) net.IP {
	if want := m.RequestedIPAddress(); want != nil && !want.IsUnspecified() {
		return want.To4()
	}
	if m.ClientIPAddr != nil && !m.ClientIPAddr.IsUnspecified() {
		return m.ClientIPAddr.To4()
	}
	return nil
}

// leaseReply builds an OFFER or ACK carrying a lease of ip: options 1, 3,
// 51, 58 (T1 = lease/2) and 59 (T2 = lease·7/8) (RFC 2131 §4.4.5), 54,
// 12 when host is set, and the boot information (pxeOptions).
func (d *dhcpServer) leaseReply(m *dhcpv4.DHCPv4, typ dhcpv4.MessageType, ip net.IP, mask net.IPMask, router net.IP,
	lease time.Duration, host, file string, log *slog.Logger) (*dhcpv4.DHCPv4, *slog.Logger) {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(ip),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(lease)),
		dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(lease / 2)),
		dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(lease * 7 / 8)),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(mask)),
	}
	if router != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(router)))
	}
	if host != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(host)))
	}
	return d.reply(m, append(mods, d.pxeOptions(file)...), log)
}

// pxeOptions are the boot-information modifiers of every answer: siaddr,
// option 54, options 60 "PXEClient" and 43 (pxeVendorOptions), 66, and the
// boot file (option 67 and the file field) when file is set.
func (d *dhcpServer) pxeOptions(file string) []dhcpv4.Modifier {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithServerIP(d.serverIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(d.serverIP)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
		dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, pxeVendorOptions),
		dhcpv4.WithOption(dhcpv4.OptTFTPServerName(d.serverIP.String())),
	}
	if file != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptBootFileName(file)), func(r *dhcpv4.DHCPv4) { r.BootFileName = file })
	}
	return mods
}

// reply builds a reply to m (xid, chaddr, flags, giaddr and option 82
// copied: RFC 3046 §2.2) with mods.
func (d *dhcpServer) reply(m *dhcpv4.DHCPv4, mods []dhcpv4.Modifier, log *slog.Logger) (*dhcpv4.DHCPv4, *slog.Logger) {
	resp, err := dhcpv4.NewReplyFromRequest(m, mods...)
	if err != nil {
		log.Error("dhcp: build reply", "err", err)
		return nil, log
	}
	return resp, log
}

// pxeVendorOptions is option 43 of every offer and ack (PXE spec 2.1,
// table 2-1): PXE_DISCOVERY_CONTROL (6) = 0x08, "boot the file named in this
// offer, without boot-server discovery", then End. Option 60 "PXEClient"
// without option 43 makes PXE firmware (EDK2's among them) treat the offer
// as a BINL offer and re-ask a boot server on port 4011; with it, the
// firmware fetches the boot file at once. iPXE takes option 60 as the end of
// its ~3 s wait for proxyDHCP offers.
var pxeVendorOptions = []byte{6, 1, 0x08, 255}

// nak builds a DHCPNAK (RFC 2131 §4.3.2) with msg as option 56. A NAK
// through a relay is broadcast by the relay (the broadcast flag set, §4.1).
func (d *dhcpServer) nak(m *dhcpv4.DHCPv4, msg string, log *slog.Logger) (*dhcpv4.DHCPv4, *slog.Logger) {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(d.serverIP)),
		dhcpv4.WithOption(dhcpv4.OptMessage(msg)),
	}
	if _, relayed := addrOf(m.GatewayIPAddr); relayed {
		mods = append(mods, dhcpv4.WithBroadcast(true))
	}
	resp, err := dhcpv4.NewReplyFromRequest(m, mods...)
	if err != nil {
		log.Error("dhcp: build NAK", "err", err)
		return nil, log
	}
	return resp, log
}

// bootFile picks the boot file: for an iPXE client (option 77 user class
// "iPXE" or option 175 present) the HTTP URL <base><route><mac>.ipxe (route
// "/boot/": the MAC's profile script; "/discover/": the discovery script),
// else the file for the client's architecture (option 93; absent → 0,
// BIOS): the node's own (res.BootFiles) before the service's. It returns ""
// when no file is known.
func (d *dhcpServer) bootFile(m *dhcpv4.DHCPv4, route string, res Reservation, log *slog.Logger) string {
	if isIPXE(m) {
		if base := d.httpBase(); base != "" {
			return base + route + m.ClientHWAddr.String() + ".ipxe"
		}
		log.Warn("dhcp: iPXE client but HTTP is disabled; answering with the firmware boot file")
	}
	arch := uint16(iana.INTEL_X86PC)
	if archs := m.ClientArch(); len(archs) > 0 {
		arch = uint16(archs[0])
	}
	if file, ok := res.BootFiles[arch]; ok {
		return file
	}
	file, ok := d.bootFiles[arch]
	if !ok {
		log.Warn("dhcp: no boot file for client architecture", "arch", arch)
	}
	return file
}

func isIPXE(m *dhcpv4.DHCPv4) bool {
	if m.Options.Has(dhcpv4.OptionEtherboot) {
		return true
	}
	for _, uc := range m.UserClass() {
		if uc == "iPXE" {
			return true
		}
	}
	return false
}

// replyAddr applies the reply destination rule: giaddr ≠ 0 → giaddr:67; a
// packet from a non-zero source IP (a relay, a renewing client, or a loopback
// virtual node) → that source address and port; else broadcast
// 255.255.255.255:68. (server4 rewrites a 0.0.0.0 source to 255.255.255.255
// with the source port, which lands in the last case.)
func replyAddr(peer net.Addr, m *dhcpv4.DHCPv4) *net.UDPAddr {
	if gi := m.GatewayIPAddr.To4(); gi != nil && !gi.IsUnspecified() {
		return &net.UDPAddr{IP: gi, Port: dhcpv4.ServerPort}
	}
	if u, ok := peer.(*net.UDPAddr); ok {
		if ip := u.IP.To4(); ip != nil && !ip.IsUnspecified() && !ip.Equal(net.IPv4bcast) {
			return &net.UDPAddr{IP: ip, Port: u.Port}
		}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}

// dhcpLibLogger routes server4's messages to slog: parse failures (malformed
// packets, which server4 drops) at Warn, the rest at Debug.
type dhcpLibLogger struct{ log *slog.Logger }

func (l dhcpLibLogger) PrintMessage(prefix string, m *dhcpv4.DHCPv4) {
	l.log.Debug("dhcp: "+prefix, "summary", m.Summary())
}

func (l dhcpLibLogger) Printf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(format, "Error parsing") {
		l.log.Warn("dhcp: dropped malformed packet", "err", msg)
		return
	}
	l.log.Debug("dhcp: " + msg)
}
