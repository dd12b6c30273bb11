package netboot

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/iana"
)

// Reservation is the fixed lease a MAC gets in reservation mode.
type Reservation struct {
	Node, Rack string        // the node owning the MAC (logged; Node is sent as host name, option 12)
	IP         net.IP        // leased IPv4 address (yiaddr)
	Mask       net.IPMask    // option 1; nil → IP.DefaultMask()
	Router     net.IP        // option 3; may be nil
	Lease      time.Duration // option 51; <= 0 → DefaultLease

	// BootFiles are this node's boot files by client architecture (DHCP
	// option 93, RFC 4578), taking precedence over Config.BootFiles for the
	// architectures they name; nil → the service's. Names as in
	// Config.BootFiles (ValidBootFile).
	BootFiles map[uint16]string
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

// archNames are the client architecture names ParseArch accepts, with
// their RFC 4578 / IANA "Processor Architecture Types" numbers.
var archNames = map[string]uint16{
	"bios":       uint16(iana.INTEL_X86PC),
	"efi-ia32":   uint16(iana.EFI_IA32),
	"efi-bc":     uint16(iana.EFI_BC),
	"efi-x86_64": uint16(iana.EFI_X86_64),
	"efi-arm32":  uint16(iana.EFI_ARM32),
	"efi-arm64":  uint16(iana.EFI_ARM64),
}

// ParseArch parses a client architecture (DHCP option 93, RFC 4578): a
// decimal number 0–65535 or one of bios (0), efi-ia32 (6), efi-x86_64 (7),
// efi-bc (9), efi-arm32 (10), efi-arm64 (11). Errors list the names.
func ParseArch(s string) (uint16, error) {
	if a, ok := archNames[strings.ToLower(s)]; ok {
		return a, nil
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("client architecture %q is neither a number 0-65535 nor one of %s",
			s, strings.Join(slices.Sorted(maps.Keys(archNames)), ", "))
	}
	return uint16(n), nil
}

// ValidBootFile reports whether name may be handed out as a boot file (a
// clean relative path, see Config.BootFiles).
func ValidBootFile(name string) error { return validArtifactName(name) }

// ReservedIP implements Reservations (a linear scan: the table is small).
func (t StaticReservations) ReservedIP(ip net.IP) bool {
	for _, r := range t {
		if r.IP.Equal(ip) {
			return true
		}
	}
	return false
}
