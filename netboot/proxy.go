package netboot

import (
	"log/slog"
	"net"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// DHCP modes (Config.DHCPMode).
const (
	// DHCPModeReservation: the authoritative server of its subnets
	// (reservations and dynamic pools).
	DHCPModeReservation = "reservation"
	// DHCPModeProxy: proxyDHCP (PXE 2.1 §2.2.5) beside a site DHCP server
	// that hands out the addresses.
	DHCPModeProxy = "proxy"
)

// PXEPort is the UDP port of the PXE boot server (PXE 2.1 §2.2.5 step 7):
// where a PXE client sends its DHCPREQUEST for boot information after it
// got its address from the site DHCP server.
const PXEPort = 4011

// proxyRespond answers in proxyDHCP mode: only a DHCPDISCOVER on port 67 or
// a DHCPREQUEST on port 4011 (or one on port 67 naming this server in
// option 54) from a PXE client (option 60 beginning "PXEClient"), for a MAC
// with a reservation or a boot profile, or unknown in a subnet whose policy
// is UnknownEnrol (recorded). The answer (OFFER to a DISCOVER, ACK to a
// REQUEST) has no yiaddr and no lease, mask or router: only boot
// information (siaddr, options 54, 60, 43, 66, 67 and the file field),
// with option 97 (client machine identifier) echoed as PXE requires.
func (d *dhcpServer) proxyRespond(m *dhcpv4.DHCPv4, pxePort bool, log *slog.Logger) (*dhcpv4.DHCPv4, *slog.Logger) {
	typ := m.MessageType()
	switch {
	case !strings.HasPrefix(m.ClassIdentifier(), "PXEClient"):
		log.Debug("dhcp proxy: not a PXE client (option 60), ignoring", "type", typ.String(), "class", m.ClassIdentifier())
		return nil, log
	case typ == dhcpv4.MessageTypeDiscover && !pxePort:
	case typ == dhcpv4.MessageTypeRequest && pxePort:
	case typ == dhcpv4.MessageTypeRequest && m.ServerIdentifier().Equal(d.serverIP):
	default:
		log.Debug("dhcp proxy: ignoring message", "type", typ.String(), "pxe_port", pxePort)
		return nil, log
	}
	mac := m.ClientHWAddr.String()
	route := "/boot/"
	res, reserved := d.res.Reservation(m.ClientHWAddr)
	if reserved {
		log = log.With(identity{node: res.Node, rack: res.Rack}.attrs()...)
	} else if d.hasProfile == nil || !d.hasProfile(mac) {
		sub := subnetFor(d.subnets, d.serverIP, m.GatewayIPAddr, m.ClientIPAddr)
		if sub == nil || sub.Unknown != UnknownEnrol {
			log.Info("dhcp proxy: unknown MAC, policy ignore: not answering", "type", typ.String())
			return nil, log
		}
		log = log.With("subnet", sub.Name)
		var ip string
		if a, ok := addrOf(m.ClientIPAddr); ok {
			ip = a.String()
		}
		d.noteDiscovered(m, sub, ip, log)
		route = "/discover/"
	}
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(replyType(typ)), dhcpv4.WithYourIP(net.IPv4zero)}
	if uuid := m.Options.Get(dhcpv4.OptionClientMachineIdentifier); uuid != nil {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, uuid))
	}
	return d.reply(m, append(mods, d.pxeOptions(d.bootFile(m, route, res, log))...), log)
}
