package netboot

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// discoveryRefresh is how often the record of an unknown MAC that keeps
// asking is rewritten (LastSeen), at most.
const discoveryRefresh = time.Minute

type discoverySighting struct {
	at time.Time
	ip string
}

// poolRespond serves a MAC without a reservation from the dynamic pool of
// its subnet (RFC 2131 §4.3), after the unknown-MAC policy. The server is
// authoritative for its pools: a REQUEST (INIT-REBOOT, RENEWING, REBINDING)
// for a free pool address it has no record of is granted, one for an
// address held by another MAC, reserved, quarantined, outside the pool or
// on another network is NAKed.
func (d *dhcpServer) poolRespond(m *dhcpv4.DHCPv4, log *slog.Logger) (*dhcpv4.DHCPv4, *slog.Logger) {
	typ := m.MessageType()
	mac := m.ClientHWAddr.String()
	sub := subnetFor(d.subnets, d.serverIP, m.GatewayIPAddr, m.ClientIPAddr)
	if sub == nil {
		log.Info("dhcp: no reservation and no subnet for this request, not answering", "type", typ.String(),
			"giaddr", m.GatewayIPAddr.String(), "ciaddr", m.ClientIPAddr.String())
		return nil, log
	}
	log = log.With("subnet", sub.Name)
	profiled := d.hasProfile != nil && d.hasProfile(mac)
	if !profiled && sub.Unknown != UnknownEnrol {
		log.Info("dhcp: unknown MAC, subnet policy ignore: not answering", "type", typ.String())
		return nil, log
	}
	if d.pool == nil || !sub.hasPool() {
		if !profiled && (typ == dhcpv4.MessageTypeDiscover || typ == dhcpv4.MessageTypeRequest) {
			d.noteDiscovered(m, sub, "", log)
		}
		log.Warn("dhcp: unknown MAC but the subnet has no dynamic pool, not answering", "type", typ.String())
		return nil, log
	}
	route := "/boot/"
	if !profiled {
		route = "/discover/"
	}
	switch typ {
	case dhcpv4.MessageTypeDiscover:
		var requested netip.Addr
		if r, ok := addrOf(m.RequestedIPAddress()); ok {
			requested = r
		}
		ip, err := d.pool.offer(sub, mac, requested)
		if !profiled {
			d.noteDiscovered(m, sub, addrString(ip), log)
		}
		if err != nil {
			log.Warn("dhcp: no OFFER: "+err.Error(), "err", err)
			return nil, log
		}
		return d.poolLease(m, dhcpv4.MessageTypeOffer, sub, ip, route, log)
	case dhcpv4.MessageTypeRequest:
		if sid := m.ServerIdentifier(); sid != nil && !sid.Equal(d.serverIP) {
			log.Debug("dhcp: REQUEST for another server", "server_id", sid.String())
			return nil, log
		}
		want, ok := addrOf(requestedAddr(m))
		if !ok {
			log.Info("dhcp: REQUEST without an address, NAK")
			return d.nak(m, "no requested address", log)
		}
		if !sub.Prefix.Contains(want) {
			log.Info("dhcp: REQUEST for an address on another network, NAK", "requested", want.String())
			return d.nak(m, "requested address is not on this network", log)
		}
		if !profiled {
			d.noteDiscovered(m, sub, want.String(), log)
		}
		if _, err := d.pool.bind(sub, mac, want); err != nil {
			if errors.Is(err, ErrAddressTaken) {
				log.Info("dhcp: REQUEST for an address not available to this client, NAK", "requested", want.String())
				return d.nak(m, "requested address is not available to this client", log)
			}
			log.Error("dhcp: cannot record the lease, not answering (the client retries)", "requested", want.String(), "err", err)
			return nil, log
		}
		return d.poolLease(m, dhcpv4.MessageTypeAck, sub, want, route, log)
	case dhcpv4.MessageTypeRelease:
		if sid := m.ServerIdentifier(); sid != nil && !sid.Equal(d.serverIP) {
			return nil, log
		}
		ip, ok := addrOf(m.ClientIPAddr)
		if !ok {
			log.Info("dhcp: DHCPRELEASE without ciaddr, ignored")
			return nil, log
		}
		freed, err := d.pool.release(sub, mac, ip)
		switch {
		case err != nil:
			log.Error("dhcp: cannot record the release", "ip", ip.String(), "err", err)
		case freed:
			log.Info("dhcp: lease released", "ip", ip.String())
		default:
			log.Info("dhcp: DHCPRELEASE of an address this MAC does not hold, ignored", "ip", ip.String())
		}
		return nil, log
	case dhcpv4.MessageTypeDecline:
		ip, ok := addrOf(m.RequestedIPAddress())
		if !ok {
			log.Info("dhcp: DHCPDECLINE without option 50, ignored")
			return nil, log
		}
		held, err := d.pool.decline(sub, mac, ip)
		switch {
		case err != nil:
			log.Error("dhcp: cannot record the decline", "ip", ip.String(), "err", err)
		case held:
			log.Warn("dhcp: address declined (in use by another host), quarantined", "ip", ip.String(), "for", DeclineQuarantine)
		default:
			log.Info("dhcp: DHCPDECLINE of an address this MAC does not hold, ignored", "ip", ip.String())
		}
		return nil, log
	}
	return nil, log
}

func addrString(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.String()
}

// poolLease builds the OFFER or ACK of a pool address.
func (d *dhcpServer) poolLease(m *dhcpv4.DHCPv4, typ dhcpv4.MessageType, sub *Subnet, ip netip.Addr, route string, log *slog.Logger) (*dhcpv4.DHCPv4, *slog.Logger) {
	var router net.IP
	if sub.Router.IsValid() {
		router = net.IP(sub.Router.AsSlice())
	}
	return d.leaseReply(m, typ, net.IP(ip.AsSlice()), sub.mask(), router, sub.lease(), "", d.bootFile(m, route, Reservation{}, log), log)
}

// inform answers a DHCPINFORM (RFC 2131 §3.4, §4.3.5): a client that has
// its address asks for its other parameters. The ACK goes to ciaddr and
// carries no yiaddr and no lease time; the mask and router are the
// reservation's, else those of the subnet holding ciaddr (or giaddr).
func (d *dhcpServer) inform(m *dhcpv4.DHCPv4, res Reservation, reserved bool, log *slog.Logger) (*dhcpv4.DHCPv4, *slog.Logger) {
	ci, ok := addrOf(m.ClientIPAddr)
	if !ok {
		log.Info("dhcp: DHCPINFORM without ciaddr, ignored")
		return nil, log
	}
	var mask net.IPMask
	var router net.IP
	route := "/boot/"
	switch sub := subnetFor(d.subnets, d.serverIP, m.GatewayIPAddr, m.ClientIPAddr); {
	case reserved:
		mask, router = res.Mask, res.Router.To4()
		if mask == nil {
			mask = res.IP.To4().DefaultMask()
		}
	case sub != nil && sub.Prefix.Contains(ci):
		mask = sub.mask()
		if sub.Router.IsValid() {
			router = net.IP(sub.Router.AsSlice())
		}
		if d.hasProfile == nil || !d.hasProfile(m.ClientHWAddr.String()) {
			route = "/discover/"
		}
	default:
		log.Info("dhcp: DHCPINFORM from an address on none of our networks, ignored", "ciaddr", ci.String())
		return nil, log
	}
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithYourIP(net.IPv4zero)}
	if mask != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptSubnetMask(mask)))
	}
	if router != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(router)))
	}
	return d.reply(m, append(mods, d.pxeOptions(d.bootFile(m, route, res, log))...), log)
}

// noteDiscovered records an unknown MAC in the discovery store: at its
// first sighting, then at most every discoveryRefresh or when its address
// changes. Failures are logged; the request is still answered.
func (d *dhcpServer) noteDiscovered(m *dhcpv4.DHCPv4, sub *Subnet, ip string, log *slog.Logger) {
	if d.discovery == nil {
		return
	}
	mac := m.ClientHWAddr.String()
	now := time.Now().UTC()
	d.seenMu.Lock()
	last, seen := d.seen[mac]
	if seen && now.Sub(last.at) < discoveryRefresh && (ip == "" || ip == last.ip) {
		d.seenMu.Unlock()
		return
	}
	if d.seen == nil {
		d.seen = map[string]discoverySighting{}
	}
	d.seen[mac] = discoverySighting{at: now, ip: ip}
	d.seenMu.Unlock()

	rec := Discovered{MAC: mac, Vendor: m.ClassIdentifier(), Subnet: sub.Name, IP: ip, FirstSeen: now, LastSeen: now}
	if archs := m.ClientArch(); len(archs) > 0 {
		rec.Arch = uint16(archs[0])
	}
	if gi, ok := addrOf(m.GatewayIPAddr); ok {
		rec.Relay = gi.String()
	}
	if err := d.discovery.Record(rec); err != nil {
		log.Error("dhcp: cannot record the unknown MAC", "err", err)
		return
	}
	if !seen {
		log.Info(fmt.Sprintf("dhcp: unknown MAC discovered (rackflow enrol %s --node NAME adopts it)", mac),
			"arch", rec.Arch, "vendor", rec.Vendor)
	}
}
