package inventory

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/rackflow/rackflow/netboot"
)

type fieldError struct{ field, msg string }

// validateRackDHCP checks a rack's pool ("first-last" inside the subnet)
// and unknown-MAC policy.
func validateRackDHCP(nb Netboot) []fieldError {
	var errs []fieldError
	if _, err := netboot.ParseUnknownPolicy(nb.Unknown); err != nil {
		errs = append(errs, fieldError{"unknown", err.Error()})
	}
	if nb.Pool == "" {
		return errs
	}
	first, last, err := ParsePool(nb.Pool)
	if err != nil {
		return append(errs, fieldError{"pool", err.Error()})
	}
	if p, err := netip.ParsePrefix(nb.Subnet); err == nil && (!p.Contains(first) || !p.Contains(last)) {
		errs = append(errs, fieldError{"pool", fmt.Sprintf("%s is not inside the subnet %s", nb.Pool, nb.Subnet)})
	}
	return errs
}

// ParsePool parses a dynamic range "10.0.0.200-10.0.0.249" (IPv4, first ≤
// last).
func ParsePool(s string) (first, last netip.Addr, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return first, last, fmt.Errorf("%q is not a range first-last such as 10.0.0.200-10.0.0.249", s)
	}
	if first, err = netip.ParseAddr(strings.TrimSpace(a)); err != nil || !first.Is4() {
		return first, last, fmt.Errorf("%q: %q is not an IPv4 address", s, a)
	}
	if last, err = netip.ParseAddr(strings.TrimSpace(b)); err != nil || !last.Is4() {
		return first, last, fmt.Errorf("%q: %q is not an IPv4 address", s, b)
	}
	if first.Compare(last) > 0 {
		return first, last, fmt.Errorf("%q: the first address is after the last", s)
	}
	return first, last, nil
}

// ReservedIP implements netboot.Reservations: whether ip is some node's
// production address.
func (inv *Inventory) ReservedIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok {
		return false
	}
	_, found := inv.byIP[a]
	return found
}

// Subnets lists the DHCP subnets of the given racks (every rack when none
// is given) for netboot.Config.Subnets: one per rack, named after it, with
// its pool, router, lease time and unknown-MAC policy. Racks sharing a
// subnet keep their order: a relay's giaddr selects the first.
func (inv *Inventory) Subnets(racks ...string) ([]netboot.Subnet, error) {
	if len(racks) == 0 {
		racks = inv.RackNames()
	}
	var out []netboot.Subnet
	for _, name := range racks {
		r, ok := inv.Rack(name)
		if !ok {
			return nil, fmt.Errorf("no rack %q in %s", name, inv.file)
		}
		prefix, err := netip.ParsePrefix(r.Netboot.Subnet)
		if err != nil {
			return nil, fmt.Errorf("rack %s: subnet: %w", name, err)
		}
		sub := netboot.Subnet{Name: r.Name, Prefix: prefix.Masked(), Lease: time.Duration(r.Netboot.Lease),
			Unknown: netboot.UnknownPolicy(r.Netboot.Unknown)}
		if r.Netboot.Router != "" {
			sub.Router, _ = netip.ParseAddr(r.Netboot.Router)
		}
		if r.Netboot.Pool != "" {
			if sub.PoolStart, sub.PoolEnd, err = ParsePool(r.Netboot.Pool); err != nil {
				return nil, fmt.Errorf("rack %s: pool: %w", name, err)
			}
		}
		out = append(out, sub)
	}
	return out, nil
}
