package netboot

import (
	"net"
	"time"
)

// Reservation is the fixed lease a MAC gets in reservation mode.
type Reservation struct {
	Node, Rack string        // the node owning the MAC (logged; Node is sent as host name, option 12)
	IP         net.IP        // leased IPv4 address (yiaddr)
	Mask       net.IPMask    // option 1; nil → IP.DefaultMask()
	Router     net.IP        // option 3; may be nil
	Lease      time.Duration // option 51; <= 0 → DefaultLease
}

// DefaultLease is the lease time sent when a Reservation has none.
const DefaultLease = time.Hour

// Reservations looks up the reservation of a MAC (implemented from the
// inventory by package inventory; StaticReservations is a fixed table).
type Reservations interface {
	Reservation(mac net.HardwareAddr) (Reservation, bool)
	// ReservedIP reports whether ip (IPv4) is some MAC's reservation: the
	// dynamic pool never hands such an address out.
	ReservedIP(ip net.IP) bool
}

// StaticReservations is a fixed Reservations table keyed by canonical MAC
// ("02:52:46:01:00:01", see CanonicalMAC).
type StaticReservations map[string]Reservation

// Reservation implements Reservations.
func (t StaticReservations) Reservation(mac net.HardwareAddr) (Reservation, bool) {
	r, ok := t[mac.String()]
	return r, ok
}

// ReservedIP implements Reservations (a linear scan: the table is small).
func (t StaticReservations) ReservedIP(ip net.IP) bool {
	for _, r := range t {
		if r.IP.Equal(ip) {
			return true
		}
	}
	return false
}
