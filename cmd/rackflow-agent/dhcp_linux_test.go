//go:build linux

package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0xbb, 0x01}

// fakeDHCP is an in-memory net.PacketConn for nclient4 whose "server"
// answers each message written with the messages answer returns.
type fakeDHCP struct {
	net.PacketConn // nil: nclient4 only calls ReadFrom, WriteTo and Close

	answer  func(req *dhcpv4.DHCPv4) [][]byte
	replies chan []byte
	closed  chan struct{}
	once    sync.Once

	mu   sync.Mutex
	sent []*dhcpv4.DHCPv4
}

func newFakeDHCP(answer func(req *dhcpv4.DHCPv4) [][]byte) *fakeDHCP {
	return &fakeDHCP{answer: answer, replies: make(chan []byte, 64), closed: make(chan struct{})}
}

func (f *fakeDHCP) WriteTo(b []byte, _ net.Addr) (int, error) {
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	f.sent = append(f.sent, m)
	f.mu.Unlock()
	for _, r := range f.answer(m) {
		f.replies <- r
	}
	return len(b), nil
}

func (f *fakeDHCP) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case r := <-f.replies:
		return copy(b, r), &net.UDPAddr{IP: testServer, Port: nclient4.ServerPort}, nil
	case <-f.closed:
		return 0, nil, net.ErrClosed
	}
}

func (f *fakeDHCP) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeDHCP) messages() []*dhcpv4.DHCPv4 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*dhcpv4.DHCPv4(nil), f.sent...)
}

// reply builds the server's answer of type typ to req.
func reply(t *testing.T, req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) []byte {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithServerIP(testServer),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(testServer)),
	}
	if typ != dhcpv4.MessageTypeNak {
		base = append(base,
			dhcpv4.WithYourIP(testLeased),
			dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
			dhcpv4.WithOption(dhcpv4.OptRouter(testServer)),
			dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 77, 0, 2))),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)),
		)
	}
	m, err := dhcpv4.NewReplyFromRequest(req, append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m.ToBytes()
}

// standardServer answers DISCOVER with an OFFER and REQUEST with an ACK.
func standardServer(t *testing.T) func(req *dhcpv4.DHCPv4) [][]byte {
	return func(req *dhcpv4.DHCPv4) [][]byte {
		switch req.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			return [][]byte{reply(t, req, dhcpv4.MessageTypeOffer)}
		case dhcpv4.MessageTypeRequest:
			return [][]byte{reply(t, req, dhcpv4.MessageTypeAck)}
		}
		return nil
	}
}

// testDHCPClient returns an nclient4 client on conn configured as the
// agent's, waiting replyWait for each reply.
func testDHCPClient(t *testing.T, conn *fakeDHCP, replyWait time.Duration) *nclient4.Client {
	t.Helper()
	c, err := nclient4.NewWithConn(conn, testMAC, dhcpClientOptions(replyWait)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDHCPLease(t *testing.T) {
	conn := newFakeDHCP(standardServer(t))
	ack, err := requestLease(context.Background(), testDHCPClient(t, conn, 200*time.Millisecond), fastRetry(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.YourIPAddr.Equal(testLeased) || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("ack = %s", ack.Summary())
	}
	sent := conn.messages()
	if len(sent) != 2 {
		t.Fatalf("sent %d messages, want DISCOVER and REQUEST", len(sent))
	}
	d, r := sent[0], sent[1]
	if d.MessageType() != dhcpv4.MessageTypeDiscover || r.MessageType() != dhcpv4.MessageTypeRequest {
		t.Fatalf("sent %s then %s", d.MessageType(), r.MessageType())
	}
	for _, m := range sent {
		if !m.IsBroadcast() {
			t.Errorf("%s without the broadcast flag", m.MessageType())
		}
		if m.ClientHWAddr.String() != testMAC.String() {
			t.Errorf("%s chaddr = %s", m.MessageType(), m.ClientHWAddr)
		}
	}
	if !r.RequestedIPAddress().Equal(testLeased) || !r.ServerIdentifier().Equal(testServer) {
		t.Errorf("REQUEST asks for %v from %v", r.RequestedIPAddress(), r.ServerIdentifier())
	}
	if r.TransactionID != d.TransactionID {
		t.Errorf("REQUEST xid %s, DISCOVER xid %s", r.TransactionID, d.TransactionID)
	}
}

func TestDHCPIgnoresOtherTraffic(t *testing.T) {
	std := standardServer(t)
	conn := newFakeDHCP(func(req *dhcpv4.DHCPv4) [][]byte {
		other, _ := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer),
			dhcpv4.WithYourIP(net.IPv4(10, 77, 0, 99)), dhcpv4.WithServerIP(testServer))
		otherMAC := *other
		otherMAC.ClientHWAddr = net.HardwareAddr{1, 2, 3, 4, 5, 6}
		otherXID := *other
		otherXID.TransactionID[0]++
		noise := [][]byte{
			[]byte("not dhcp"),
			otherMAC.ToBytes(),
			otherXID.ToBytes(),
			req.ToBytes(), // our own request, as a packet socket sees it
		}
		return append(noise, std(req)...)
	})
	ack, err := requestLease(context.Background(), testDHCPClient(t, conn, 200*time.Millisecond), fastRetry(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.YourIPAddr.Equal(testLeased) {
		t.Fatalf("leased %s, want %s", ack.YourIPAddr, testLeased)
	}
}

func TestDHCPRetriesAfterNAK(t *testing.T) {
	var naks int
	std := standardServer(t)
	conn := newFakeDHCP(func(req *dhcpv4.DHCPv4) [][]byte {
		if req.MessageType() == dhcpv4.MessageTypeRequest && naks == 0 {
			naks++
			return [][]byte{reply(t, req, dhcpv4.MessageTypeNak, dhcpv4.WithOption(dhcpv4.OptMessage("not yours")))}
		}
		return std(req)
	})
	var notes []error
	notify := attemptNotifier(func(attempt int, err error, next time.Duration) { notes = append(notes, err) })
	if _, err := requestLease(context.Background(), testDHCPClient(t, conn, 200*time.Millisecond), fastRetry(0), notify); err != nil {
		t.Fatal(err)
	}
	var nak *nclient4.ErrNak
	if len(notes) != 1 || !errors.As(notes[0], &nak) || !strings.Contains(notes[0].Error(), "not yours") {
		t.Fatalf("retry notes = %q", notes)
	}
	if n := len(conn.messages()); n != 4 {
		t.Errorf("sent %d messages, want 4", n)
	}
}

func TestDHCPNoServer(t *testing.T) {
	conn := newFakeDHCP(func(*dhcpv4.DHCPv4) [][]byte { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := requestLease(ctx, testDHCPClient(t, conn, 30*time.Millisecond), fastRetry(0), nil)
	if !errors.Is(err, nclient4.ErrNoResponse) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the last exchange's no-response error", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
	if n := len(conn.messages()); n < 2 {
		t.Errorf("sent %d DISCOVERs, want several", n)
	}
}

// TestDHCPBoundedByContext checks that the context bounds the total time
// even while an exchange waits for a reply.
func TestDHCPBoundedByContext(t *testing.T) {
	conn := newFakeDHCP(func(*dhcpv4.DHCPv4) [][]byte { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := requestLease(ctx, testDHCPClient(t, conn, time.Minute), fastRetry(0), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
}
