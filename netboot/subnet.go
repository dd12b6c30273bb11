package netboot

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// UnknownPolicy says what the DHCP server does with a MAC that has neither a
// reservation nor a boot profile.
type UnknownPolicy string

const (
	// UnknownIgnore: no answer (the default).
	UnknownIgnore UnknownPolicy = "ignore"
	// UnknownEnrol (HaDeS' automatic discovery): record the MAC, its
	// architecture (option 93), first and last sighting and relay/subnet
	// in the discovery store, lease it a pool address and chain iPXE to the
	// discovery script (GET /discover/<mac>.ipxe) until an operator adopts
	// it (rackflow enrol).
	UnknownEnrol UnknownPolicy = "enrol"
)

// ParseUnknownPolicy parses "ignore", "enrol" ("" → ignore).
func ParseUnknownPolicy(s string) (UnknownPolicy, error) {
	switch UnknownPolicy(s) {
	case "", UnknownIgnore:
		return UnknownIgnore, nil
	case UnknownEnrol:
		return UnknownEnrol, nil
	}
	return "", fmt.Errorf("unknown-MAC policy %q: want %q or %q", s, UnknownIgnore, UnknownEnrol)
}

// Subnet is one IPv4 network the DHCP server serves, directly or through
// relay agents: a request whose giaddr (RFC 2131 §4.3.1; RFC 3046 relays)
// lies in Prefix is served from this subnet; a request without giaddr from
// the subnet holding its ciaddr, else from the subnet holding the service's
// ServerIP (the link the server is on).
type Subnet struct {
	Name      string        // rack or subnet label, [a-z0-9][a-z0-9._-]*: logs and discovery records
	Prefix    netip.Prefix  // e.g. 10.0.0.0/24: option 1 of pool leases
	PoolStart netip.Addr    // first dynamic address (inclusive); zero → no pool
	PoolEnd   netip.Addr    // last dynamic address (inclusive)
	Router    netip.Addr    // option 3 of pool leases; zero → none
	Lease     time.Duration // option 51 of pool leases; <= 0 → DefaultLease
	Unknown   UnknownPolicy // "" → UnknownIgnore
}

// hasPool reports whether s has a dynamic range.
func (s *Subnet) hasPool() bool { return s.PoolStart.IsValid() }

// inPool reports whether ip is inside s's dynamic range.
func (s *Subnet) inPool(ip netip.Addr) bool {
	return s.hasPool() && ip.Is4() && ip.Compare(s.PoolStart) >= 0 && ip.Compare(s.PoolEnd) <= 0
}

func (s *Subnet) lease() time.Duration {
	if s.Lease <= 0 {
		return DefaultLease
	}
	return s.Lease
}

func (s *Subnet) mask() net.IPMask { return net.CIDRMask(s.Prefix.Bits(), 32) }

// validateSubnets checks names, prefixes, pool bounds (inside the prefix,
// start ≤ end, neither the network nor the broadcast address) and that no
// two pools overlap. It returns the subnets with defaults applied.
func validateSubnets(subs []Subnet) ([]Subnet, error) {
	out := make([]Subnet, len(subs))
	var errs []error
	for i, s := range subs {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("Subnets[%d] (%s): %s", i, s.Name, fmt.Sprintf(format, args...)))
		}
		if err := ValidName(s.Name); err != nil {
			bad("%v", err)
		}
		if !s.Prefix.IsValid() || !s.Prefix.Addr().Is4() {
			bad("prefix %v is not an IPv4 prefix", s.Prefix)
			continue
		}
		s.Prefix = s.Prefix.Masked()
		p, err := ParseUnknownPolicy(string(s.Unknown))
		if err != nil {
			bad("%v", err)
		}
		s.Unknown = p
		if s.Router.IsValid() && !s.Router.Is4() {
			bad("router %v is not IPv4", s.Router)
		}
		switch {
		case !s.PoolStart.IsValid() && !s.PoolEnd.IsValid():
		case !s.PoolStart.IsValid() || !s.PoolEnd.IsValid():
			bad("pool needs both a start and an end")
		case !s.Prefix.Contains(s.PoolStart) || !s.Prefix.Contains(s.PoolEnd):
			bad("pool %v-%v is not inside %v", s.PoolStart, s.PoolEnd, s.Prefix)
		case s.PoolStart.Compare(s.PoolEnd) > 0:
			bad("pool start %v is after its end %v", s.PoolStart, s.PoolEnd)
		case s.Prefix.Bits() < 31 && (s.PoolStart == s.Prefix.Addr() || s.PoolEnd == lastAddr(s.Prefix)):
			bad("pool %v-%v includes the network or broadcast address of %v", s.PoolStart, s.PoolEnd, s.Prefix)
		}
		out[i] = s
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			a, b := &out[i], &out[j]
			if a.hasPool() && b.hasPool() && a.PoolStart.Compare(b.PoolEnd) <= 0 && b.PoolStart.Compare(a.PoolEnd) <= 0 {
				errs = append(errs, fmt.Errorf("Subnets[%d] (%s) and [%d] (%s): pools %v-%v and %v-%v overlap",
					i, a.Name, j, b.Name, a.PoolStart, a.PoolEnd, b.PoolStart, b.PoolEnd))
			}
		}
	}
	return out, errors.Join(errs...)
}

// lastAddr is the highest address of p (its broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := be32(a) | (1<<(32-p.Bits()) - 1)
	return addrFrom32(v)
}

func be32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

func addrFrom32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// addrOf converts a 4-byte or 16-byte IPv4 net.IP; ok is false otherwise or
// for 0.0.0.0.
func addrOf(ip net.IP) (netip.Addr, bool) {
	v4 := ip.To4()
	if v4 == nil || v4.IsUnspecified() {
		return netip.Addr{}, false
	}
	a, _ := netip.AddrFromSlice(v4)
	return a, true
}

// subnetFor picks the subnet of a request (see Subnet): nil when none
// matches.
func subnetFor(subs []Subnet, serverIP net.IP, giaddr, ciaddr net.IP) *Subnet {
	find := func(ip netip.Addr) *Subnet {
		for i := range subs {
			if subs[i].Prefix.Contains(ip) {
				return &subs[i]
			}
		}
		return nil
	}
	if gi, ok := addrOf(giaddr); ok {
		return find(gi)
	}
	if ci, ok := addrOf(ciaddr); ok {
		if s := find(ci); s != nil {
			return s
		}
	}
	if sip, ok := addrOf(serverIP); ok {
		return find(sip)
	}
	return nil
}
