package netboot

import (
	"bytes"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzDHCPPool feeds arbitrary datagrams to a reservation-mode server with
// a dynamic pool (one lease already bound) and the enrol policy:
//
//	go test ./netboot -run '^$' -fuzz FuzzDHCPPool -fuzztime 60s
//
// No panic. A datagram that does not parse, is not a BOOTREQUEST, or has no
// 6-byte Ethernet chaddr — garbage — changes neither the leases nor the
// journal nor the discovery store. Whatever is accepted keeps the pool's
// invariants: every address held by at most one MAC, none reserved, every
// lease inside the pool, the journal replaying to the same bound leases.
func FuzzDHCPPool(f *testing.F) {
	for _, s := range dhcpSeeds(f) {
		f.Add(s)
	}
	pooled := mustMACf(f, "02:52:46:0f:00:01")
	bound := netip.MustParseAddr("127.200.0.10")
	for _, m := range []*dhcpv4.DHCPv4{
		mustMsg(f)(dhcpv4.NewDiscovery(mustMACf(f, "02:52:46:0f:00:02"), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)))),
		mustMsg(f)(dhcpv4.New(dhcpv4.WithHwAddr(pooled), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(bound.AsSlice()))),
		mustMsg(f)(dhcpv4.New(dhcpv4.WithHwAddr(pooled), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(bound.AsSlice()))),
		mustMsg(f)(dhcpv4.New(dhcpv4.WithHwAddr(pooled), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(bound.AsSlice())))),
		mustMsg(f)(dhcpv4.New(dhcpv4.WithHwAddr(pooled), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(bound.AsSlice()))),
		mustMsg(f)(dhcpv4.New(dhcpv4.WithHwAddr(mustMACf(f, "02:52:46:0f:00:03")), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(bound.AsSlice())))),
	} {
		f.Add(m.ToBytes())
		b := m.ToBytes()
		b[1] = 6 // the same with a non-Ethernet htype: garbage
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		state := t.TempDir()
		sub := loopSubnet
		res := fuzzReservations()
		var panics atomic.Int32
		d := &dhcpServer{res: res, serverIP: net.IPv4(127, 0, 0, 1).To4(), bootFiles: maps.Clone(DefaultBootFiles),
			httpBase: func() string { return "http://127.0.0.1:8880" }, log: slog.New(panicCounter{&panics}),
			subnets: []Subnet{sub}}
		var err error
		if d.discovery, err = OpenDiscovery(state); err != nil {
			t.Fatal(err)
		}
		reserved := func(ip netip.Addr) bool { return res.ReservedIP(ip.AsSlice()) }
		if d.pool, err = openLeasePool(state, d.subnets, reserved, time.Now); err != nil {
			t.Fatal(err)
		}
		defer d.closePool()
		if _, err := d.pool.bind(&sub, pooled.String(), bound); err != nil {
			t.Fatal(err)
		}
		before := leaseSnapshot(d.pool)
		journal := func() []byte { b, _ := os.ReadFile(filepath.Join(state, leaseFile)); return b }
		journalBefore := journal()

		m, perr := dhcpv4.FromBytes(data)
		garbage := perr != nil || m.OpCode != dhcpv4.OpcodeBootRequest || m.HWType != iana.HWTypeEthernet || len(m.ClientHWAddr) != 6
		if perr == nil {
			conn := &capturePacketConn{}
			d.handle(conn, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ClientPort}, m, false)
			if len(conn.sent) > 1 {
				t.Fatalf("%d replies to one datagram", len(conn.sent))
			}
		}
		if panics.Load() != 0 {
			t.Fatal("handler recovered from a panic")
		}
		if garbage {
			if !maps.Equal(before, leaseSnapshot(d.pool)) || !bytes.Equal(journalBefore, journal()) {
				t.Fatal("garbage changed the lease state")
			}
			if l, _ := d.discovery.List(); len(l) != 0 {
				t.Fatal("garbage was recorded as a discovered MAC")
			}
			return
		}
		holders := map[netip.Addr]string{}
		boundBy := map[string]netip.Addr{}
		for _, l := range d.pool.Leases() {
			switch {
			case !sub.inPool(l.IP):
				t.Fatalf("lease outside the pool: %+v", l)
			case res.ReservedIP(l.IP.AsSlice()):
				t.Fatalf("reserved address in the pool: %+v", l)
			}
			if l.State == string(leaseBound) {
				if other, dup := boundBy[l.MAC]; dup {
					t.Fatalf("%s bound to %v and %v", l.MAC, other, l.IP)
				}
				boundBy[l.MAC] = l.IP
			}
			if h, dup := holders[l.IP]; dup {
				t.Fatalf("%v held by %s and %s", l.IP, h, l.MAC)
			}
			holders[l.IP] = l.MAC
		}
		leases, err := ReadLeases(state)
		if err != nil {
			t.Fatalf("the journal does not replay: %v", err)
		}
		replayed := map[string]netip.Addr{}
		for _, l := range leases {
			if l.State == string(leaseBound) {
				replayed[l.MAC] = l.IP
			}
		}
		if !maps.Equal(replayed, boundBy) {
			t.Fatalf("journal replays to %v, memory holds %v", replayed, boundBy)
		}
	})
}

// leaseSnapshot renders every record of p for comparison.
func leaseSnapshot(p *leasePool) map[netip.Addr]Lease {
	out := map[netip.Addr]Lease{}
	for _, l := range p.Leases() {
		out[l.IP] = l
	}
	return out
}

func mustMACf(f *testing.F, s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		f.Fatal(err)
	}
	return hw
}

func mustMsg(f *testing.F) func(*dhcpv4.DHCPv4, error) *dhcpv4.DHCPv4 {
	return func(m *dhcpv4.DHCPv4, err error) *dhcpv4.DHCPv4 {
		if err != nil {
			f.Fatal(err)
		}
		return m
	}
}
