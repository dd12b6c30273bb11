//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// bringUp sets iface up, waits for carrier, obtains a DHCPv4 lease and
// applies its address, mask and default route. It prints the "link" and
// "dhcp ok" lines. Errors start with "link:" or "dhcp:".
func (n *networkSetup) bringUp(ctx context.Context, iface string) (netConfig, error) {
	start := time.Now()
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return netConfig{}, fmt.Errorf("link: %s: %w", iface, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return netConfig{}, fmt.Errorf("link: set %s up: %w", iface, err)
	}
	if err := n.waitCarrier(ctx, iface); err != nil {
		return netConfig{}, err
	}
	n.con.step("link %s up in %s", iface, seconds(time.Since(start)))

	start = time.Now()
	// nclient4 uses a packet socket, which works on an interface without
	// an address and is not subject to reverse-path filtering.
	client, err := nclient4.New(iface, dhcpClientOptions(n.replyWait)...)
	if err != nil {
		return netConfig{}, fmt.Errorf("dhcp: %s: %w", iface, err)
	}
	defer client.Close()
	dctx, cancel := context.WithTimeout(ctx, n.dhcpTimeout)
	defer cancel()
	ack, err := requestLease(dctx, client, n.dhcpRetry, attemptNotifier(func(attempt int, err error, next time.Duration) {
		n.con.step("retry dhcp: %v (attempt %d, next in %s)", err, attempt, seconds(next))
	}))
	if err != nil {
		if ctx.Err() != nil {
			return netConfig{}, fmt.Errorf("dhcp: %w", context.Cause(ctx))
		}
		return netConfig{}, fmt.Errorf("dhcp: no lease on %s after %.0fs: %w", iface, time.Since(start).Seconds(), err)
	}
	cfg, err := leaseConfig(ack)
	if err != nil {
		return netConfig{}, fmt.Errorf("dhcp: %w", err)
	}
	if err := applyConfig(link, cfg); err != nil {
		return netConfig{}, err
	}
	router := "none"
	if cfg.Router != nil {
		router = cfg.Router.String()
	}
	n.con.step("dhcp ok %s via %s server %s iface %s in %s",
		cfg.Addr.String(), router, ipOrUnknown(cfg.Server), iface, seconds(time.Since(start)))
	if n.resolvConf != "" && len(cfg.DNS) > 0 {
		if err := writeResolvConf(n.resolvConf, cfg.DNS); err != nil {
			n.con.step("warning %v", err)
		}
	}
	return cfg, nil
}

// waitCarrier polls iface until the kernel reports carrier (IFF_LOWER_UP or
// operstate up) or n.carrierWait has passed.
func (n *networkSetup) waitCarrier(ctx context.Context, iface string) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return struct{}{}, backoff.Permanent(fmt.Errorf("link: %s: %w", iface, err))
		}
		a := l.Attrs()
		if a.RawFlags&unix.IFF_LOWER_UP != 0 || a.OperState == netlink.OperUp {
			return struct{}{}, nil
		}
		return struct{}{}, fmt.Errorf("link: no carrier on %s after %s", iface, n.carrierWait)
	}, constant(100*time.Millisecond, 0, n.carrierWait).options(nil)...)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("link: %w", context.Cause(ctx))
	}
	return err
}

// applyConfig adds the leased address to link and, when the lease has a
// router, replaces the default route (on-link when the router lies
// outside the subnet). Errors start with "dhcp:".
func applyConfig(link netlink.Link, cfg netConfig) error {
	addr := cfg.Addr
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: &addr}); err != nil {
		return fmt.Errorf("dhcp: add %s to %s: %w", cfg.Addr.String(), link.Attrs().Name, err)
	}
	if cfg.Router == nil {
		return nil
	}
	route := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		Gw:        cfg.Router,
	}
	if !cfg.Addr.Contains(cfg.Router) {
		route.Flags = int(netlink.FLAG_ONLINK)
	}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("dhcp: default route via %s on %s: %w", cfg.Router, link.Attrs().Name, err)
	}
	return nil
}

// writeResolvConf writes the name servers to path unless the file exists
// (the initramfs may ship its own).
func writeResolvConf(path string, dns []net.IP) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	var b strings.Builder
	for _, d := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	return nil
}
