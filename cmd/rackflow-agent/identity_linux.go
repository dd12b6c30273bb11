//go:build linux

package main

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// systemIdentity applies an identity to the running system (netlink and
// sethostname(2); needs CAP_NET_ADMIN and CAP_SYS_ADMIN, as root in the
// initramfs has).
type systemIdentity struct{}

// applyIdentity adds addr to iface (replacing the same address with
// another prefix; the temporary address stays until the machine reboots)
// and sets the hostname.
func (systemIdentity) applyIdentity(iface string, addr *net.IPNet, hostname string) error {
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("%s: %w", iface, err)
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: addr}); err != nil {
		return fmt.Errorf("add %s to %s: %w", addr, iface, err)
	}
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return fmt.Errorf("hostname %s: %w", hostname, err)
	}
	return nil
}
