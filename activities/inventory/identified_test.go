package inventory

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecordIdentified(t *testing.T) {
	write := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "inv.yaml")
		if err := os.WriteFile(path, []byte(good), 0o640); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newNode := Node{Name: "r01n03", Rack: "r01", Slot: 3, MACs: []string{"02-52-46-0F-00-03"}, IP: "10.0.0.13"}

	t.Run("a new machine is added without a BMC; the reservation holds it", func(t *testing.T) {
		path := write(t)
		inv, changed, err := RecordIdentified(path, newNode)
		if err != nil || !changed {
			t.Fatalf("RecordIdentified: changed %v, %v", changed, err)
		}
		again, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range []*Inventory{inv, again} {
			n, err := i.Node("r01n03")
			if err != nil || n.HasBMC() || n.MACs[0] != "02:52:46:0f:00:03" || n.Slot != 3 {
				t.Fatalf("recorded node %+v, %v", n, err)
			}
			hw, _ := net.ParseMAC("02:52:46:0f:00:03")
			if res, ok := i.Reservation(hw); !ok || res.Node != "r01n03" || res.IP.String() != "10.0.0.13" {
				t.Fatalf("reservation of the new MAC: %+v, %v", res, ok)
			}
		}
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data[strings.Index(string(data), "r01n03"):]), "bmc") {
			t.Fatalf("the new node has a bmc entry:\n%s", data)
		}
		if _, changed, err := RecordIdentified(path, newNode); err != nil || changed {
			t.Fatalf("repeated record: changed %v, %v (want no change)", changed, err)
		}
	})
	for _, tc := range []struct {
		name string
		n    Node
		want error  // nil: any error
		msg  string // in the error
	}{
		{"MAC is another node's", Node{Name: "r01n09", Rack: "r01", Slot: 9, MACs: []string{"02:52:46:01:00:01"}, IP: "10.0.0.19"}, ErrMACTaken, "r01n01"},
		{"name is another node's", Node{Name: "r01n02", Rack: "r01", Slot: 3, MACs: []string{"02:52:46:0f:00:09"}, IP: "10.0.0.19"}, ErrNameTaken, "r01n02"},
		{"address is another node's", Node{Name: "r01n09", Rack: "r01", Slot: 9, MACs: []string{"02:52:46:0f:00:09"}, IP: "10.0.0.11"}, ErrNameTaken, "r01n01"},
		{"same MAC and name, other address", Node{Name: "r01n01", Rack: "r01", Slot: 1, MACs: []string{"02:52:46:01:00:01"}, IP: "10.0.0.19"}, ErrNameTaken, "10.0.0.11"},
		{"unknown rack", Node{Name: "r09n01", Rack: "r09", Slot: 1, MACs: []string{"02:52:46:0f:00:09"}, IP: "10.0.0.19"}, nil, `no rack named "r09"`},
		{"address outside the subnet", Node{Name: "r01n09", Rack: "r01", Slot: 9, MACs: []string{"02:52:46:0f:00:09"}, IP: "10.9.0.19"}, nil, "outside rack r01's subnet"},
		{"bad MAC", Node{Name: "r01n09", Rack: "r01", Slot: 9, MACs: []string{"02:52:46"}, IP: "10.0.0.19"}, nil, "not an Ethernet MAC"},
		{"two MACs", Node{Name: "r01n09", Rack: "r01", Slot: 9, MACs: []string{"02:52:46:0f:00:09", "02:52:46:0f:00:0a"}, IP: "10.0.0.19"}, nil, "want one MAC"},
		{"bad name", Node{Name: "R01_N09", Rack: "r01", Slot: 9, MACs: []string{"02:52:46:0f:00:09"}, IP: "10.0.0.19"}, nil, "not a valid name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t)
			_, changed, err := RecordIdentified(path, tc.n)
			if err == nil || changed || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("RecordIdentified: changed %v, %v; want an error wrapping %v saying %q", changed, err, tc.want, tc.msg)
			}
			if data, _ := os.ReadFile(path); string(data) != good {
				t.Fatalf("the inventory changed:\n%s", data)
			}
		})
	}
}

func TestNodeWithoutBMC(t *testing.T) {
	inv, err := Parse("inv.yaml", []byte(good+"  - {name: r01n05, rack: r01, slot: 5, macs: [\"02:52:46:01:00:05\"], ip: 10.0.0.15}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := inv.Node("r01n05"); n.HasBMC() {
		t.Fatalf("node without bmc: HasBMC true: %+v", n.BMC)
	}
	// A partial BMC entry is still an error naming the field.
	_, err = Parse("inv.yaml", []byte(good+"  - {name: r01n05, rack: r01, slot: 5, macs: [\"02:52:46:01:00:05\"], ip: 10.0.0.15, bmc: {driver: ipmi}}\n"))
	if err == nil || !strings.Contains(err.Error(), "nodes[2].bmc.address") {
		t.Fatalf("partial bmc: %v", err)
	}
}
