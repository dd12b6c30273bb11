package vrack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// dhcpTimeouts (copied by Start) are the waits before each retransmission of a DHCP message
// (PXE ROMs use 4, 8, 16, 32 s; shortened for loopback).
var dhcpTimeouts = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}

// errNoAnswer means the DHCP server never answered (PXE-E51).
var errNoAnswer = errors.New("no DHCP answer")

// lease is what a DHCP exchange gave the node.
type lease struct {
	ip       net.IP // yiaddr
	server   net.IP // option 54
	siaddr   net.IP // next-server
	tftpName string // option 66
	bootFile string // option 67, else the file field
}

// dhcpOptions are the options of the node's DISCOVER and REQUEST: as a PXE
// ROM (60 PXEClient:Arch:…, 93, 94, 97, 55) and, for iPXE, option 77 "iPXE".
func (n *Node) dhcpOptions(ipxe bool) []dhcpv4.Modifier {
	arch := n.spec.Arch
	undi := "003016"
	if ipxe {
		undi = "003010"
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.Arch(arch))),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("PXEClient:Arch:%05d:UNDI:%s", arch, undi))),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 16}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, machineGUID(n.spec.MAC)...)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionHostName, dhcpv4.OptionClassIdentifier, dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName),
	}
	if ipxe {
		mods = append(mods, dhcpv4.WithUserClass("iPXE", false))
	}
	return mods
}

// dhcp runs DISCOVER → OFFER → REQUEST → ACK with the DHCP server from a UDP
// socket bound to local (unicast both ways; the server answers the source
// address). A NAK or no answer is an error.
func (n *Node) dhcp(ctx context.Context, local net.IP, ipxe bool) (lease, error) {
	server, err := net.ResolveUDPAddr("udp4", n.rack.cfg.DHCPServer)
	if err != nil {
		return lease{}, err
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local})
	if err != nil {
		return lease{}, fmt.Errorf("dhcp socket on %s: %w", local, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	mods := n.dhcpOptions(ipxe)
	discover, err := dhcpv4.NewDiscovery(n.spec.MAC, mods...)
	if err != nil {
		return lease{}, err
	}
	offer, err := n.exchange(ctx, conn, server, discover, dhcpv4.MessageTypeOffer)
	if err != nil {
		return lease{}, fmt.Errorf("discover: %w", err)
	}
	request, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		return lease{}, err
	}
	ack, err := n.exchange(ctx, conn, server, request, dhcpv4.MessageTypeAck)
	if err != nil {
		return lease{}, fmt.Errorf("request %s: %w", offer.YourIPAddr, err)
	}
	l := lease{
		ip:       ack.YourIPAddr.To4(),
		server:   ack.ServerIdentifier(),
		siaddr:   ack.ServerIPAddr,
		tftpName: ack.TFTPServerName(),
		bootFile: ack.BootFileNameOption(),
	}
	if l.bootFile == "" {
		l.bootFile = ack.BootFileName
	}
	if l.ip == nil || l.ip.IsUnspecified() {
		return lease{}, fmt.Errorf("ACK without an address (yiaddr %s)", ack.YourIPAddr)
	}
	return l, nil
}

// exchange sends msg and waits for the reply of type want with the same
// transaction ID and MAC, retransmitting on the dhcpTimeouts schedule.
func (n *Node) exchange(ctx context.Context, conn *net.UDPConn, server *net.UDPAddr, msg *dhcpv4.DHCPv4, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	buf := make([]byte, 1500)
	for _, wait := range n.rack.dhcpTimeouts {
		if _, err := conn.WriteToUDP(msg.ToBytes(), server); err != nil {
			return nil, ctxOr(ctx, fmt.Errorf("send %s: %w", msg.MessageType(), err))
		}
		deadline := time.Now().Add(wait)
		for {
			if err := conn.SetReadDeadline(deadline); err != nil {
				return nil, ctxOr(ctx, err)
			}
			nr, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				var ne net.Error
				if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
					break // retransmit
				}
				return nil, ctxOr(ctx, err)
			}
			m, err := dhcpv4.FromBytes(buf[:nr])
			if err != nil || m.OpCode != dhcpv4.OpcodeBootReply || m.TransactionID != msg.TransactionID ||
				!bytes.Equal(m.ClientHWAddr, n.spec.MAC) {
				continue
			}
			switch m.MessageType() {
			case want:
				return m, nil
			case dhcpv4.MessageTypeNak:
				return nil, fmt.Errorf("NAK from %s: %s", m.ServerIdentifier(), m.Message())
			}
		}
	}
	return nil, fmt.Errorf("%w to %s after %d tries", errNoAnswer, msg.MessageType(), len(n.rack.dhcpTimeouts))
}

// ctxOr returns ctx's error when it is done (the socket was closed because
// of it), else err.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// bindIP is the address client sockets bind after the lease: the leased
// address when it is a loopback one (usable without configuration on
// Linux), else none (the kernel picks).
func bindIP(leased net.IP) net.IP {
	if leased.IsLoopback() {
		return leased
	}
	return nil
}
