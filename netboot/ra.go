package netboot

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// raResponder answers IPv6 router solicitations on one interface with a
// router advertisement that offers nothing: router lifetime 0 (not a
// default router, RFC 4861 §4.2), no prefix options, M and O flags clear (no
// DHCPv6). Boot firmware that configures IPv6 beside DHCPv4 then finishes
// at once instead of waiting out its timeout: iPXE's "Configuring (net0)"
// waits ~13 s for an RA on a link without one. Hosts learn no IPv6 route or
// address from it.
type raResponder struct {
	conn *ndp.Conn
	ifi  *net.Interface
	log  *slog.Logger
}

// raListenWait bounds how long listenRA waits for the interface's IPv6
// link-local address (duplicate address detection after link-up takes ~1 s).
const raListenWait = 5 * time.Second

// listenRA opens an ICMPv6 socket on the link-local address of the
// interface called name and joins the all-routers group.
func listenRA(name string, log *slog.Logger) (*raResponder, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("router advertisements: interface %q: %w", name, err)
	}
	deadline := time.Now().Add(raListenWait)
	var conn *ndp.Conn
	for {
		conn, _, err = ndp.Listen(ifi, ndp.LinkLocal)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("router advertisements on %s: %w", name, err)
	}
	allRouters := netip.MustParseAddr("ff02::2")
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	if err := errors.Join(conn.JoinGroup(allRouters), conn.SetICMPFilter(&f)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("router advertisements on %s: %w", name, err)
	}
	return &raResponder{conn: conn, ifi: ifi, log: log.With("iface", name)}, nil
}

// serve answers solicitations until the socket is closed (then it returns
// nil). Malformed packets are dropped by ndp.
func (r *raResponder) serve() error {
	ra := &ndp.RouterAdvertisement{
		CurrentHopLimit: 64,
		RouterLifetime:  0,
		Options:         []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: r.ifi.HardwareAddr}},
	}
	allNodes := netip.MustParseAddr("ff02::1")
	for {
		m, _, src, err := r.conn.ReadFrom()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("router advertisements: %w", err)
		}
		if _, ok := m.(*ndp.RouterSolicitation); !ok {
			continue
		}
		dst := src
		if !src.IsValid() || src.WithZone("").IsUnspecified() {
			dst = allNodes
		}
		if err := r.conn.WriteTo(ra, nil, dst); err != nil {
			r.log.Warn("ra: send router advertisement failed", "dst", dst.String(), "err", err)
			continue
		}
		r.log.Debug("ra: answered a router solicitation", "src", src.String())
	}
}

func (r *raResponder) close() { _ = r.conn.Close() }
