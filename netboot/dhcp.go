package netboot

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

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

// dhcpServer answers DHCPv4 in reservation mode: DISCOVER → OFFER and
// REQUEST → ACK (NAK when the requested address is not the reservation) for
// MACs Reservations knows; every other MAC and message is logged and
// ignored.
type dhcpServer struct {
	res       Reservations
	serverIP  net.IP            // 4-byte: siaddr, option 54, option 66
	bootFiles map[uint16]string // option 93 → boot file
	httpBase  func() string     // "http://host:port" or "" when HTTP is off
	log       *slog.Logger
	obs       *instruments // metrics and the client table; nil records nothing

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

// serve runs server4 on conn until conn is closed, then waits for in-flight
// handlers. It returns the error that ended the read loop.
func (d *dhcpServer) serve(conn net.PacketConn) error {
	srv, err := server4.NewServer("", nil, d.handle,
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
func (d *dhcpServer) handle(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
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

	resp, log := d.respond(peer, m)
	if resp == nil {
		return
	}
	dst := replyAddr(peer, m)
	if _, err := conn.WriteTo(resp.ToBytes(), dst); err != nil {
		log.Warn("dhcp: send reply failed", "type", resp.MessageType().String(), "dst", dst.String(), "err", err)
		return
	}
	d.obs.dhcpReply(dhcpModeReservation, resp.MessageType())
	log.Info("dhcp: reply sent", "type", resp.MessageType().String(), "dst", dst.String(),
		"yiaddr", resp.YourIPAddr.String(), "bootfile", resp.BootFileName)
}

// respond builds the reply to m, or returns nil when m gets none.
func (d *dhcpServer) respond(peer net.Addr, m *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, *slog.Logger) {
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
	typ := m.MessageType()
	if typ != dhcpv4.MessageTypeDiscover && typ != dhcpv4.MessageTypeRequest {
		log.Debug("dhcp: ignoring message", "type", typ.String())
		return nil, log
	}
	res, ok := d.res.Reservation(mac)
	if !ok {
		log.Info("dhcp: no reservation for MAC, not answering", "type", typ.String())
		return nil, log
	}
	log = log.With(identity{node: res.Node, rack: res.Rack}.attrs()...)
	ip := res.IP.To4()
	if ip == nil {
		log.Error("dhcp: reservation has no IPv4 address, not answering", "ip", res.IP.String())
		return nil, log
	}
	if typ == dhcpv4.MessageTypeRequest {
		if sid := m.ServerIdentifier(); sid != nil && !sid.Equal(d.serverIP) {
			log.Debug("dhcp: REQUEST for another server", "server_id", sid.String())
			return nil, log
		}
		want := m.RequestedIPAddress()
		if want == nil && m.ClientIPAddr != nil && !m.ClientIPAddr.IsUnspecified() {
			want = m.ClientIPAddr
		}
		if want == nil || !want.Equal(ip) {
			log.Info("dhcp: REQUEST for an address that is not the reservation, NAK", "requested", fmt.Sprint(want), "reserved", ip.String())
			return d.nak(m, log)
		}
	}
	replyType := dhcpv4.MessageTypeOffer
	if typ == dhcpv4.MessageTypeRequest {
		replyType = dhcpv4.MessageTypeAck
	}
	mask := res.Mask
	if mask == nil {
		mask = ip.DefaultMask()
	}
	lease := res.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(replyType),
		dhcpv4.WithYourIP(ip),
		dhcpv4.WithServerIP(d.serverIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(d.serverIP)),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(lease)),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(mask)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
		dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, pxeVendorOptions),
		dhcpv4.WithOption(dhcpv4.OptTFTPServerName(d.serverIP.String())),
	}
	if r := res.Router.To4(); r != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(r)))
	}
	if res.Node != "" && ValidName(res.Node) == nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(res.Node)))
	}
	if file := d.bootFile(m, res, log); file != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptBootFileName(file)), func(r *dhcpv4.DHCPv4) { r.BootFileName = file })
	}
	resp, err := dhcpv4.NewReplyFromRequest(m, mods...)
	if err != nil {
		log.Error("dhcp: build reply", "err", err)
		return nil, log
	}
	if replyType == dhcpv4.MessageTypeAck && d.obs != nil {
		d.obs.clients.bound(identity{mac: mac.String(), node: res.Node, rack: res.Rack}, ip, lease)
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

func (d *dhcpServer) nak(m *dhcpv4.DHCPv4, log *slog.Logger) (*dhcpv4.DHCPv4, *slog.Logger) {
	resp, err := dhcpv4.NewReplyFromRequest(m,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(d.serverIP)),
		dhcpv4.WithOption(dhcpv4.OptMessage("requested address is not reserved for this client")),
	)
	if err != nil {
		log.Error("dhcp: build NAK", "err", err)
		return nil, log
	}
	return resp, log
}

// bootFile picks the boot file: the HTTP URL of the node's iPXE script for
// an iPXE client (option 77 user class "iPXE" or option 175 present), else
// the file for the client's architecture (option 93; absent → 0, BIOS):
// the node's own (Reservation.BootFiles) before the service's. It returns
// "" when no file is known.
func (d *dhcpServer) bootFile(m *dhcpv4.DHCPv4, res Reservation, log *slog.Logger) string {
	if isIPXE(m) {
		if base := d.httpBase(); base != "" {
			return base + "/boot/" + m.ClientHWAddr.String() + ".ipxe"
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
