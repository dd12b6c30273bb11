package netboot

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// clientTable remembers, for each address this service acknowledged over
// DHCP, the MAC, node and rack it was leased to and until when: TFTP and
// HTTP see only a client's address, and their log lines name the machine
// through this table. It is also the state behind the leases-in-use gauge.
// Entries are dropped once their lease has expired; a new ACK of the same
// MAC replaces its earlier address. Safe for concurrent use.
type clientTable struct {
	mu    sync.Mutex
	byIP  map[netip.Addr]clientLease
	byMAC map[string]netip.Addr
}

// clientLease is one acknowledged lease.
type clientLease struct {
	identity
	expires time.Time
}

// identity names a machine in log lines: MAC (canonical), node and rack,
// each "" when unknown.
type identity struct {
	mac, node, rack string
}

// attrs returns the known fields as slog attributes ("mac", "node",
// "rack"), skipping unknown ones.
func (id identity) attrs() []any {
	var a []any
	for _, kv := range [...][2]string{{"mac", id.mac}, {"node", id.node}, {"rack", id.rack}} {
		if kv[1] != "" {
			a = append(a, slog.String(kv[0], kv[1]))
		}
	}
	return a
}

func newClientTable() *clientTable {
	return &clientTable{byIP: map[netip.Addr]clientLease{}, byMAC: map[string]netip.Addr{}}
}

// bound records that ip was acknowledged to id.mac for lease.
func (c *clientTable) bound(id identity, ip net.IP, lease time.Duration) {
	if c == nil {
		return
	}
	addr, ok := netip.AddrFromSlice(ip.To4())
	if !ok {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byMAC[id.mac]; ok && old != addr {
		delete(c.byIP, old)
	}
	if prev, ok := c.byIP[addr]; ok && prev.mac != id.mac {
		delete(c.byMAC, prev.mac)
	}
	c.byIP[addr] = clientLease{identity: id, expires: now.Add(lease)}
	c.byMAC[id.mac] = addr
}

// lookup returns the identity behind a "host:port" or bare IP address
// (zero when unknown or expired).
func (c *clientTable) lookup(hostport string) identity {
	if c == nil {
		return identity{}
	}
	addr, err := netip.ParseAddrPort(hostport)
	var ip netip.Addr
	if err == nil {
		ip = addr.Addr()
	} else if ip, err = netip.ParseAddr(hostport); err != nil {
		return identity{}
	}
	ip = ip.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.byIP[ip]
	if !ok || time.Now().After(l.expires) {
		return identity{}
	}
	return l.identity
}

// inUse returns the number of unexpired leases at now, dropping expired
// ones.
func (c *clientTable) inUse(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ip, l := range c.byIP {
		if now.After(l.expires) {
			delete(c.byIP, ip)
			delete(c.byMAC, l.mac)
		}
	}
	return len(c.byIP)
}
