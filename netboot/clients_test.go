package netboot

import (
	"net"
	"testing"
	"time"
)

func TestClientTable(t *testing.T) {
	c := newClientTable()
	a := identity{mac: "02:52:46:01:00:01", node: "r01n01", rack: "r01"}
	b := identity{mac: "02:52:46:01:00:02", node: "r01n02", rack: "r01"}
	ip1, ip2 := net.IPv4(10, 0, 0, 11), net.IPv4(10, 0, 0, 12)

	c.bound(a, ip1, time.Hour)
	for _, addr := range []string{"10.0.0.11:4011", "10.0.0.11", "[::ffff:10.0.0.11]:80"} {
		if got := c.lookup(addr); got != a {
			t.Errorf("lookup(%q) = %+v, want %+v", addr, got, a)
		}
	}
	for _, addr := range []string{"10.0.0.12:1", "not an address", "", "[::1]:80"} {
		if got := c.lookup(addr); got != (identity{}) {
			t.Errorf("lookup(%q) = %+v, want nothing", addr, got)
		}
	}

	// The MAC moves to another address: the old one is forgotten.
	c.bound(a, ip2, time.Hour)
	if got := c.lookup("10.0.0.11:1"); got != (identity{}) {
		t.Errorf("old address still names %+v", got)
	}
	if n := c.inUse(time.Now()); n != 1 {
		t.Errorf("inUse = %d after a move, want 1", n)
	}
	// Another MAC takes the address over.
	c.bound(b, ip2, time.Hour)
	if got := c.lookup("10.0.0.12:1"); got != b {
		t.Errorf("taken-over address names %+v, want %+v", got, b)
	}
	c.bound(a, ip1, time.Hour)
	if n := c.inUse(time.Now()); n != 2 {
		t.Errorf("inUse = %d, want 2", n)
	}
	// Expiry: not looked up, dropped by inUse.
	c.bound(a, ip1, -time.Second)
	if got := c.lookup("10.0.0.11:1"); got != (identity{}) {
		t.Errorf("expired lease names %+v", got)
	}
	if n := c.inUse(time.Now()); n != 1 {
		t.Errorf("inUse = %d after an expiry, want 1", n)
	}
	// A nil table records and knows nothing.
	var none *clientTable
	none.bound(a, ip1, time.Hour)
	if got := none.lookup("10.0.0.11:1"); got != (identity{}) {
		t.Errorf("nil table lookup = %+v", got)
	}
	if got := a.attrs(); len(got) != 3 {
		t.Errorf("attrs = %v, want mac, node, rack", got)
	}
	if got := (identity{node: "r01n01"}).attrs(); len(got) != 1 {
		t.Errorf("attrs of a node alone = %v", got)
	}
}
