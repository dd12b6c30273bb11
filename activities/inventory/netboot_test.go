package inventory

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rackflow/rackflow/netboot"
)

func TestRackDHCPFields(t *testing.T) {
	withNetboot := func(nb string) string {
		return strings.Replace(good, "netboot: {server_ip: 10.0.0.1, subnet: 10.0.0.0/24, router: 10.0.0.254, lease: 30m}", "netboot: "+nb, 1)
	}
	bad := []struct{ name, netboot, want string }{
		{"pool without dash", "{server_ip: 10.0.0.1, subnet: 10.0.0.0/24, pool: 10.0.0.200}", "racks[0].netboot.pool: \"10.0.0.200\" is not a range"},
		{"pool not IPv4", "{server_ip: 10.0.0.1, subnet: 10.0.0.0/24, pool: 10.0.0.200-fe80::1}", "not an IPv4 address"},
		{"pool reversed", "{server_ip: 10.0.0.1, subnet: 10.0.0.0/24, pool: 10.0.0.249-10.0.0.200}", "first address is after the last"},
		{"pool outside subnet", "{server_ip: 10.0.0.1, subnet: 10.0.0.0/24, pool: 10.0.0.200-10.0.1.10}", "not inside the subnet"},
		{"bad policy", "{server_ip: 10.0.0.1, subnet: 10.0.0.0/24, unknown: adopt}", "racks[0].netboot.unknown"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("inv.yaml", []byte(withNetboot(tt.netboot)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	inv, err := Parse("inv.yaml", []byte(withNetboot("{server_ip: 10.0.0.1, subnet: 10.0.0.0/24, router: 10.0.0.254, lease: 30m, pool: 10.0.0.200-10.0.0.249, unknown: enrol}")))
	if err != nil {
		t.Fatal(err)
	}
	subs, err := inv.Subnets()
	if err != nil {
		t.Fatal(err)
	}
	want := netboot.Subnet{Name: "r01", Prefix: netip.MustParsePrefix("10.0.0.0/24"), PoolStart: netip.MustParseAddr("10.0.0.200"),
		PoolEnd: netip.MustParseAddr("10.0.0.249"), Router: netip.MustParseAddr("10.0.0.254"), Lease: 30 * time.Minute, Unknown: netboot.UnknownEnrol}
	if len(subs) != 1 || subs[0] != want {
		t.Fatalf("Subnets = %+v, want %+v", subs, want)
	}
	if _, err := inv.Subnets("r09"); err == nil {
		t.Fatal("Subnets of an unknown rack did not fail")
	}
	if !inv.ReservedIP(net.ParseIP("10.0.0.12")) || inv.ReservedIP(net.ParseIP("10.0.0.200")) || inv.ReservedIP(nil) {
		t.Fatal("ReservedIP does not match the nodes' addresses")
	}
}
