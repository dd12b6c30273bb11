package main

import (
	"fmt"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// ipOrUnknown formats ip, or "unknown server" when it is nil.
func ipOrUnknown(ip net.IP) string {
	if ip == nil {
		return "unknown server"
	}
	return ip.String()
}

// netConfig is what the agent applies from a lease.
type netConfig struct {
	Addr   net.IPNet     // leased address and subnet mask
	Router net.IP        // default gateway; nil when the lease has none
	Server net.IP        // DHCP server that granted the lease
	DNS    []net.IP      // name servers; may be empty
	Lease  time.Duration // lease time (0 when the ACK does not say)
}

// leaseConfig extracts the interface configuration from a DHCP ACK. A
// missing subnet mask defaults to the address's classful mask.
func leaseConfig(ack *dhcpv4.DHCPv4) (netConfig, error) {
	var cfg netConfig
	ip := ack.YourIPAddr.To4()
	if ip == nil || ip.IsUnspecified() || ip.Equal(net.IPv4bcast) || ip.IsMulticast() || ip.IsLoopback() {
		return cfg, fmt.Errorf("ACK has no usable address (yiaddr %v)", ack.YourIPAddr)
	}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ip.DefaultMask()
	}
	if ones, bits := mask.Size(); bits != 32 || ones == 0 {
		return cfg, fmt.Errorf("ACK has an invalid subnet mask %v", net.IP(mask))
	}
	cfg.Addr = net.IPNet{IP: ip, Mask: mask}
	for _, r := range ack.Router() {
		if r4 := r.To4(); r4 != nil && !r4.IsUnspecified() {
			cfg.Router = r4
			break
		}
	}
	cfg.Server = ack.ServerIdentifier().To4()
	if cfg.Server == nil && ack.ServerIPAddr.To4() != nil && !ack.ServerIPAddr.IsUnspecified() {
		cfg.Server = ack.ServerIPAddr.To4()
	}
	for _, d := range ack.DNS() {
		if d4 := d.To4(); d4 != nil && !d4.IsUnspecified() {
			cfg.DNS = append(cfg.DNS, d4)
		}
	}
	cfg.Lease = ack.IPAddressLeaseTime(0)
	return cfg, nil
}
