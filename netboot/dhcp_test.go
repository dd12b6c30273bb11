package netboot

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

const (
	knownMAC   = "02:52:46:01:00:01"
	unknownMAC = "02:52:46:01:00:99"
)

var (
	reservedIP = net.IPv4(127, 100, 1, 1).To4()
	routerIP   = net.IPv4(127, 100, 1, 254).To4()
)

func dhcpEnv(t *testing.T, mutate func(*Config)) (*testEnv, *net.UDPConn, *net.UDPAddr) {
	t.Helper()
	env := startService(t, func(c *Config) {
		c.TFTPAddr = ""
		c.Reservations = StaticReservations{knownMAC: {
			Node: "r01n01", Rack: "r01", IP: reservedIP,
			Mask: net.CIDRMask(16, 32), Router: routerIP, Lease: 2 * time.Hour,
		}}
		if mutate != nil {
			mutate(c)
		}
	})
	server, err := net.ResolveUDPAddr("udp4", env.svc.DHCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return env, conn, server
}

// exchange sends m and returns the first reply with m's transaction ID;
// replies to other transactions are returned in others.
func exchange(t *testing.T, conn *net.UDPConn, server *net.UDPAddr, m *dhcpv4.DHCPv4, wait time.Duration) (reply *dhcpv4.DHCPv4, others []*dhcpv4.DHCPv4) {
	t.Helper()
	if _, err := conn.WriteToUDP(m.ToBytes(), server); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, others
		}
		if err != nil {
			t.Fatal(err)
		}
		r, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			t.Fatalf("server sent an unparsable reply: %v", err)
		}
		if r.TransactionID == m.TransactionID {
			return r, others
		}
		others = append(others, r)
	}
}

func discover(t *testing.T, mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(mustMAC(t, mac), mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDHCPDiscoverOffer(t *testing.T) {
	env, conn, server := dhcpEnv(t, nil)
	ipxeURL := env.svc.HTTPBase() + "/boot/" + knownMAC + ".ipxe"
	tests := []struct {
		name     string
		mods     []dhcpv4.Modifier
		wantFile string
	}{
		{"no arch option: BIOS", nil, "undionly.kpxe"},
		{"arch 0 BIOS", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}, "undionly.kpxe"},
		{"arch 7 UEFI x86-64", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))}, "ipxe.efi"},
		{"arch 9 UEFI BC", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_BC))}, "ipxe.efi"},
		{"arch 11 UEFI arm64", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_ARM64))}, "ipxe-arm64.efi"},
		{"arch 6 unknown: no file", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_IA32))}, ""},
		{"iPXE user class (raw)", []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)), dhcpv4.WithUserClass("iPXE", false)}, ipxeURL},
		{"iPXE user class (RFC 3004)", []dhcpv4.Modifier{dhcpv4.WithUserClass("iPXE", true)}, ipxeURL},
		{"option 175 present", []dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.OptionEtherboot, []byte{0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e})}, ipxeURL},
		{"other user class", []dhcpv4.Modifier{dhcpv4.WithUserClass("gPXE-ish", false)}, "undionly.kpxe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offer, _ := exchange(t, conn, server, discover(t, knownMAC, tt.mods...), 5*time.Second)
			if offer == nil {
				t.Fatal("no OFFER")
			}
			checkLease(t, offer, dhcpv4.MessageTypeOffer, tt.wantFile)
		})
	}
}

// checkLease asserts the fields every OFFER/ACK for knownMAC carries.
func checkLease(t *testing.T, r *dhcpv4.DHCPv4, wantType dhcpv4.MessageType, wantFile string) {
	t.Helper()
	serverIP := net.IPv4(127, 0, 0, 1).To4()
	checks := []struct {
		what      string
		got, want any
	}{
		{"message type", r.MessageType(), wantType},
		{"opcode", r.OpCode, dhcpv4.OpcodeBootReply},
		{"chaddr", r.ClientHWAddr.String(), knownMAC},
		{"yiaddr", r.YourIPAddr.String(), reservedIP.String()},
		{"siaddr", r.ServerIPAddr.String(), serverIP.String()},
		{"option 54", r.ServerIdentifier().String(), serverIP.String()},
		{"option 51", r.IPAddressLeaseTime(0), 2 * time.Hour},
		{"option 1", r.SubnetMask().String(), net.CIDRMask(16, 32).String()},
		{"option 3", len(r.Router()) == 1 && r.Router()[0].Equal(routerIP), true},
		{"option 60", r.ClassIdentifier(), "PXEClient"},
		{"option 43 (PXE discovery control: boot the offered file)", string(r.Options.Get(dhcpv4.OptionVendorSpecificInformation)), string([]byte{6, 1, 8, 255})},
		{"option 66", r.TFTPServerName(), serverIP.String()},
		{"option 12", r.HostName(), "r01n01"},
		{"option 67", r.BootFileNameOption(), wantFile},
		{"file field", r.BootFileName, wantFile},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestDHCPRequest(t *testing.T) {
	_, conn, server := dhcpEnv(t, nil)
	offer, _ := exchange(t, conn, server, discover(t, knownMAC, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))), 5*time.Second)
	if offer == nil {
		t.Fatal("no OFFER")
	}
	fromOffer, err := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)))
	if err != nil {
		t.Fatal(err)
	}
	newRequest := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{
			dhcpv4.WithHwAddr(mustMAC(t, knownMAC)),
			dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name     string
		req      *dhcpv4.DHCPv4
		wantType dhcpv4.MessageType // 0 → no reply
	}{
		{"selecting: request from offer", fromOffer, dhcpv4.MessageTypeAck},
		{"init-reboot: option 50 = reservation", newRequest(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(reservedIP))), dhcpv4.MessageTypeAck},
		{"renewing: ciaddr = reservation", newRequest(dhcpv4.WithClientIP(reservedIP)), dhcpv4.MessageTypeAck},
		{"wrong requested IP", newRequest(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(127, 100, 1, 2)))), dhcpv4.MessageTypeNak},
		{"no address at all", newRequest(), dhcpv4.MessageTypeNak},
		{"another server selected", newRequest(
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(reservedIP)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(127, 0, 0, 9)))), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait := 5 * time.Second
			if tt.wantType == 0 {
				wait = 300 * time.Millisecond
			}
			reply, _ := exchange(t, conn, server, tt.req, wait)
			switch {
			case tt.wantType == 0:
				if reply != nil {
					t.Fatalf("got %s, want no reply", reply.MessageType())
				}
			case reply == nil:
				t.Fatalf("no reply, want %s", tt.wantType)
			case tt.wantType == dhcpv4.MessageTypeAck:
				file := "undionly.kpxe"
				if tt.req == fromOffer {
					file = "ipxe.efi"
				}
				checkLease(t, reply, dhcpv4.MessageTypeAck, file)
			default:
				if reply.MessageType() != tt.wantType {
					t.Fatalf("reply %s, want %s", reply.MessageType(), tt.wantType)
				}
				if !reply.YourIPAddr.IsUnspecified() || reply.BootFileName != "" {
					t.Fatalf("NAK carries yiaddr %s / file %q", reply.YourIPAddr, reply.BootFileName)
				}
			}
		})
	}
}

func TestDHCPUnknownMACAndMalformed(t *testing.T) {
	_, conn, server := dhcpEnv(t, nil)
	valid := discover(t, knownMAC)
	junk := [][]byte{
		nil,
		{0x01},
		[]byte("definitely not DHCP"),
		make([]byte, 240),                   // zero header, no magic cookie
		append(valid.ToBytes()[:240], 0x35), // option without length
		append(valid.ToBytes()[:240], 0x35, 0x09, 0x01),                // length past the end
		func() []byte { b := valid.ToBytes(); b[0] = 2; return b }(),   // a BOOTREPLY
		func() []byte { b := valid.ToBytes(); b[2] = 200; return b }(), // hlen 200
	}
	for _, b := range junk {
		if _, err := conn.WriteToUDP(b, server); err != nil {
			t.Fatal(err)
		}
	}
	unknown := discover(t, unknownMAC)
	if reply, others := exchange(t, conn, server, unknown, 300*time.Millisecond); reply != nil || len(others) != 0 {
		t.Fatalf("unknown MAC / junk got replies: %v, %d others", reply, len(others))
	}
	// The server survived the junk and still answers a known MAC.
	offer, others := exchange(t, conn, server, valid, 5*time.Second)
	if offer == nil {
		t.Fatal("no OFFER after malformed packets")
	}
	for _, o := range others {
		if o.TransactionID == unknown.TransactionID {
			t.Fatal("unknown MAC got a reply")
		}
	}
	checkLease(t, offer, dhcpv4.MessageTypeOffer, "undionly.kpxe")
}

func TestDHCPCustomBootFiles(t *testing.T) {
	_, conn, server := dhcpEnv(t, func(c *Config) {
		c.BootFiles = map[uint16]string{uint16(iana.EFI_X86_64): "efi/snp.efi"}
		c.HTTPAddr = ""
	})
	tests := []struct {
		name     string
		mods     []dhcpv4.Modifier
		wantFile string
	}{
		{"mapped arch", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))}, "efi/snp.efi"},
		{"unmapped BIOS", nil, ""},
		{"iPXE without HTTP falls back to arch", []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)), dhcpv4.WithUserClass("iPXE", false)}, "efi/snp.efi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offer, _ := exchange(t, conn, server, discover(t, knownMAC, tt.mods...), 5*time.Second)
			if offer == nil {
				t.Fatal("no OFFER")
			}
			if offer.BootFileName != tt.wantFile || offer.BootFileNameOption() != tt.wantFile {
				t.Fatalf("boot file %q / option 67 %q, want %q", offer.BootFileName, offer.BootFileNameOption(), tt.wantFile)
			}
		})
	}
}

func TestReplyAddr(t *testing.T) {
	tests := []struct {
		name   string
		peer   net.Addr
		giaddr net.IP
		want   string
	}{
		{"relay giaddr wins", &net.UDPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 67}, net.IPv4(10, 0, 0, 1), "10.0.0.1:67"},
		{"loopback virtual node", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40123}, net.IPv4zero, "127.0.0.1:40123"},
		{"renewing client", &net.UDPAddr{IP: net.IPv4(127, 100, 1, 1), Port: 68}, nil, "127.100.1.1:68"},
		{"zero source (server4 rewrites to broadcast)", &net.UDPAddr{IP: net.IPv4bcast, Port: 68}, net.IPv4zero, "255.255.255.255:68"},
		{"zero source, odd port", &net.UDPAddr{IP: net.IPv4zero, Port: 1234}, net.IPv4zero, "255.255.255.255:68"},
		{"non-UDP peer", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, net.IPv4zero, "255.255.255.255:68"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &dhcpv4.DHCPv4{GatewayIPAddr: tt.giaddr}
			if got := replyAddr(tt.peer, m).String(); got != tt.want {
				t.Fatalf("replyAddr = %s, want %s", got, tt.want)
			}
		})
	}
}
