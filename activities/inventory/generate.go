package inventory

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/rackflow/rackflow/netboot"
)

// VirtualRackPassword is the BMC password of generated virtual racks. It
// protects emulated BMCs on loopback only.
const VirtualRackPassword = "rackflow-dev"

// GenerateVirtual builds the inventory of a virtual rack for `rackflow dev`:
// racks r01…rK with nodes rKKnNN…, each with a Redfish BMC emulated on its own
// loopback address (127.<rack>.<hi>.<lo>:<bmcPort>) and a production IP
// 127.<100+rack>.<hi>.<lo>, so every packet stays on this machine. Node names
// use at least two digits (r01n01; r01n1000 past 99 nodes when needed).
func GenerateVirtual(racks, nodesPerRack int, serverIP string, bmcPort int) (*Inventory, error) {
	if racks < 1 || racks > 99 {
		return nil, fmt.Errorf("racks: %d is outside 1…99", racks)
	}
	if nodesPerRack < 1 || nodesPerRack > 65000 {
		return nil, fmt.Errorf("nodes: %d is outside 1…65000", nodesPerRack)
	}
	width := len(fmt.Sprint(nodesPerRack))
	if width < 2 {
		width = 2
	}
	inv := &Inventory{Credentials: map[string]Credential{
		"virtual-bmc": {Username: "admin", Password: VirtualRackPassword},
	}}
	for k := 1; k <= racks; k++ {
		rack := fmt.Sprintf("r%02d", k)
		inv.Racks = append(inv.Racks, Rack{
			Name:        rack,
			Credentials: "virtual-bmc",
			Limits:      Limits{Clones: 8, PowerOns: 8, PowerOnInterval: Duration(0), InFlight: 64},
			Netboot:     Netboot{ServerIP: serverIP, Subnet: "127.0.0.0/8", Lease: Duration(time.Hour)},
		})
		for i := 1; i <= nodesPerRack; i++ {
			hi, lo := i>>8, i&0xff
			inv.Nodes = append(inv.Nodes, Node{
				Name: fmt.Sprintf("%sn%0*d", rack, width, i),
				Rack: rack,
				Slot: i,
				MACs: []string{net.HardwareAddr{0x02, 0x52, 0x46, byte(k), byte(hi), byte(lo)}.String()},
				IP:   netip.AddrFrom4([4]byte{127, byte(100 + k), byte(hi), byte(lo)}).String(),
				BMC:  BMC{Driver: "redfish", Address: fmt.Sprintf("127.%d.%d.%d:%d", k, hi, lo, bmcPort)},
			})
		}
	}
	data, err := inv.Marshal()
	if err != nil {
		return nil, err
	}
	return Parse("(generated)", data)
}

// Reservation implements netboot.Reservations: the node owning mac gets its
// production IP with its rack's subnet mask, router and lease time (default 1 h).
func (inv *Inventory) Reservation(mac net.HardwareAddr) (netboot.Reservation, bool) {
	n, ok := inv.NodeByMAC(mac)
	if !ok {
		return netboot.Reservation{}, false
	}
	r, _ := inv.Rack(n.Rack)
	prefix, _ := netip.ParsePrefix(r.Netboot.Subnet)
	res := netboot.Reservation{
		Node:  n.Name,
		Rack:  n.Rack,
		IP:    net.ParseIP(n.IP).To4(),
		Mask:  net.CIDRMask(prefix.Bits(), 32),
		Lease: time.Duration(r.Netboot.Lease),
	}
	if res.Lease == 0 {
		res.Lease = time.Hour
	}
	if r.Netboot.Router != "" {
		res.Router = net.ParseIP(r.Netboot.Router).To4()
	}
	for key, file := range n.BootFiles {
		arch, _ := netboot.ParseArch(key) // validated by Parse
		if res.BootFiles == nil {
			res.BootFiles = map[uint16]string{}
		}
		res.BootFiles[arch] = file
	}
	return res, true
}
