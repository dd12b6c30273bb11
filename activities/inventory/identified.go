package inventory

import (
	"errors"
	"fmt"
	"net"
	"slices"
)

// Errors of RecordIdentified (wrapped, with the names involved).
var (
	// ErrMACTaken: the MAC is already another node's.
	ErrMACTaken = errors.New("MAC belongs to another node")
	// ErrNameTaken: the name is already a node with other MACs.
	ErrNameTaken = errors.New("node name already used")
	// ErrInvalidNode: the node does not have exactly one valid MAC.
	ErrInvalidNode = errors.New("invalid identified node")
)

// RecordIdentified records a node identified by USB identify (Purdue
// "Steele": its MAC, and the name, slot and production address of its rack
// position) in the inventory file at path, so that the netboot service's
// reservation (reloaded from the file) gives it its production address and
// later operations find it. n.BMC may be empty: the machine was unknown,
// and its BMC is added later.
//
//   - The MAC (n.MACs[0]) and the name are already the same node: nothing
//     changes (a repeated confirmation); changed is false.
//   - The MAC is another node's: an error wrapping ErrMACTaken.
//   - The name is another node's (other MACs): an error wrapping
//     ErrNameTaken.
//   - Not exactly one valid MAC: an error wrapping ErrInvalidNode.
//   - Otherwise n is appended (AddNode: validated, the file replaced
//     atomically); a validation error (unknown rack, address outside the
//     rack's subnet or another node's) names the field.
//
// On any error the file is untouched.
func RecordIdentified(path string, n Node) (inv *Inventory, changed bool, err error) {
	if len(n.MACs) != 1 {
		return nil, false, fmt.Errorf("record identified node %s: want one MAC, got %d: %w", n.Name, len(n.MACs), ErrInvalidNode)
	}
	hw, err := net.ParseMAC(n.MACs[0])
	if err != nil || len(hw) != 6 {
		return nil, false, fmt.Errorf("record identified node %s: %q is not an Ethernet MAC address: %w", n.Name, n.MACs[0], ErrInvalidNode)
	}
	n.MACs = []string{hw.String()}
	cur, err := Load(path)
	if err != nil {
		return nil, false, err
	}
	if owner, ok := cur.NodeByMAC(hw); ok {
		if owner.Name != n.Name {
			return nil, false, fmt.Errorf("record identified node %s: MAC %s is node %s's in %s: %w", n.Name, hw, owner.Name, path, ErrMACTaken)
		}
		if owner.IP != n.IP || owner.Rack != n.Rack {
			return nil, false, fmt.Errorf("record identified node %s: it is in %s already with rack %s and address %s, not %s and %s: %w",
				n.Name, path, owner.Rack, owner.IP, n.Rack, n.IP, ErrNameTaken)
		}
		return cur, false, nil
	}
	if other, err := cur.Node(n.Name); err == nil {
		return nil, false, fmt.Errorf("record identified node %s: the name is a node with MACs %v in %s: %w", n.Name, other.MACs, path, ErrNameTaken)
	}
	if slices.ContainsFunc(cur.Nodes, func(o Node) bool { return o.IP == n.IP }) {
		i := slices.IndexFunc(cur.Nodes, func(o Node) bool { return o.IP == n.IP })
		return nil, false, fmt.Errorf("record identified node %s: address %s is node %s's in %s: %w", n.Name, n.IP, cur.Nodes[i].Name, path, ErrNameTaken)
	}
	inv, err = AddNode(path, n)
	if err != nil {
		return nil, false, err
	}
	return inv, true, nil
}
