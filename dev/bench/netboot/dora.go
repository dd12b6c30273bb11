package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// doraClient runs full DHCP exchanges (DISCOVER → OFFER, REQUEST → ACK,
// RFC 2131 §3.1) for many client MACs over one socket: insomniacslk's
// nclient4 raw broadcast socket (NewRawUDPConn: AF_PACKET on the interface,
// UDP port 68, source 0.0.0.0, Ethernet broadcast — what a client in INIT
// state sends) carrying dhcpv4 packets whose chaddr is the simulated
// client's MAC and whose broadcast flag is set, so every server broadcasts
// its replies.
//
// Why not one nclient4.Client per MAC: a Client accepts only replies whose
// chaddr is its own interface MAC (WithHWAddr sets that one MAC), so
// simulating N MACs takes N Clients, each with its own raw socket that
// receives and parses every reply of every other exchange — the generator,
// not the server, would set the rate. One socket and a demultiplexer by
// transaction ID (what nclient4 does inside a Client, without its MAC
// filter) costs one parse per reply.
type doraClient struct {
	conn    net.PacketConn
	timeout time.Duration // per try
	tries   int

	mu      sync.Mutex
	pending map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
	done    chan struct{}
}

// udpToPort is a classic BPF program for a cooked (IP-level) packet
// socket: accept IPv4 UDP datagrams to port, drop everything else.
func udpToPort(port int) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 9, Size: 1},                               // IP protocol
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 17, SkipTrue: 3},        // not UDP → drop
		bpf.LoadMemShift{Off: 0},                                        // X = IP header length
		bpf.LoadIndirect{Off: 2, Size: 2},                               // UDP destination port
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(port), SkipTrue: 1}, // → accept
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0xffff},
	}
}

// broadcastServer is where INIT-state clients send: 255.255.255.255:67.
var broadcastServer = &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}

// newDORAClient opens the raw socket on iface (needs CAP_NET_RAW) and
// starts reading replies; Close stops it. The socket is nclient4's
// (NewBroadcastUDPConn over an AF_PACKET socket, as NewRawUDPConn builds
// it) with a kernel filter passing only UDP to port 68, so the boot storm's
// TFTP and HTTP traffic on the same interface never reaches it.
func newDORAClient(iface string, timeout time.Duration, tries int) (*doraClient, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	filter, err := bpf.Assemble(udpToPort(dhcpv4.ClientPort))
	if err != nil {
		return nil, err
	}
	raw, err := packet.Listen(ifc, packet.Datagram, unix.ETH_P_IP, &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("raw DHCP socket on %s: %w", iface, err)
	}
	conn := nclient4.NewBroadcastUDPConn(raw, &net.UDPAddr{Port: dhcpv4.ClientPort})
	c := &doraClient{conn: conn, timeout: timeout, tries: tries,
		pending: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}, done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

func (c *doraClient) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

func (c *doraClient) readLoop() {
	defer close(c.done)
	buf := make([]byte, nclient4.MaxMessageSize)
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		c.mu.Lock()
		ch := c.pending[m.TransactionID]
		c.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default: // a duplicate; the waiter has its reply
			}
		}
	}
}

// errNoReply is returned when every try timed out.
var errNoReply = errors.New("no reply")

// exchange sends m and waits for a reply with m's transaction ID and one of
// the types want, resending up to c.tries times.
func (c *doraClient) exchange(ctx context.Context, m *dhcpv4.DHCPv4, want ...dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	ch := make(chan *dhcpv4.DHCPv4, 4)
	c.mu.Lock()
	if _, dup := c.pending[m.TransactionID]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("transaction ID %s in use", m.TransactionID)
	}
	c.pending[m.TransactionID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, m.TransactionID)
		c.mu.Unlock()
	}()
	pkt := m.ToBytes()
	for try := 0; try < c.tries; try++ {
		if _, err := c.conn.WriteTo(pkt, broadcastServer); err != nil {
			return nil, fmt.Errorf("send %s: %w", m.MessageType(), err)
		}
		timer := time.NewTimer(c.timeout)
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			case <-timer.C:
				break wait
			case r := <-ch:
				for _, t := range want {
					if r.MessageType() == t {
						timer.Stop()
						return r, nil
					}
				}
			}
		}
	}
	return nil, fmt.Errorf("%s for %s: %w after %d tries", m.MessageType(), m.ClientHWAddr, errNoReply, c.tries)
}

// dora obtains a lease for mac: DISCOVER, the first OFFER, REQUEST of it,
// ACK. mods are applied to both requests (e.g. option 93). A NAK is an
// error.
func (c *doraClient) dora(ctx context.Context, mac net.HardwareAddr, mods ...dhcpv4.Modifier) (*dhcpv4.DHCPv4, error) {
	mods = append([]dhcpv4.Modifier{dhcpv4.WithBroadcast(true)}, mods...)
	disc, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		return nil, err
	}
	offer, err := c.exchange(ctx, disc, dhcpv4.MessageTypeOffer)
	if err != nil {
		return nil, err
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		return nil, err
	}
	ack, err := c.exchange(ctx, req, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if err != nil {
		return nil, err
	}
	if ack.MessageType() == dhcpv4.MessageTypeNak {
		return nil, fmt.Errorf("REQUEST for %s: NAK (%s)", mac, ack.Message())
	}
	return ack, nil
}
