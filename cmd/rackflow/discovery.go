package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/netboot"
)

// dhcpStateFlag is the netboot service's DHCP state directory: the lease
// journal and the discovery store, read by `discovered` and `enrol`.
var dhcpStateFlag = &cli.StringFlag{Name: "dhcp-state", Value: "/var/lib/rackflow/dhcp",
	Usage: "DHCP state directory of the netboot service (leases, discovered MACs); `rackflow dev` uses <state-dir>/dhcp"}

func discoveredCommand() *cli.Command {
	return &cli.Command{
		Name:  "discovered",
		Usage: "list the unknown MACs the netboot service recorded in racks whose policy is enrol (HaDeS discovery)",
		Flags: []cli.Flag{dhcpStateFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return badUsage(c, "unexpected argument %q", c.Args().First())
			}
			ds, err := openDiscovery(c)
			if err != nil {
				return err
			}
			list, err := ds.List()
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if list == nil {
					list = []netboot.Discovered{}
				}
				return writeJSON(c.App.Writer, list)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MAC\tARCH\tSUBNET\tRELAY\tIP\tFIRST SEEN\tLAST SEEN\tVENDOR")
			for _, d := range list {
				fmt.Fprintf(tw, "%s\t%d %s\t%s\t%s\t%s\t%s\t%s\t%q\n", d.MAC, d.Arch, d.ArchName, d.Subnet, dash(d.Relay), dash(d.IP),
					d.FirstSeen.Local().Format(time.DateTime), d.LastSeen.Local().Format(time.DateTime), d.Vendor)
			}
			return tw.Flush()
		},
	}
}

func leasesCommand() *cli.Command {
	return &cli.Command{
		Name:  "leases",
		Usage: "list the dynamic-pool leases the netboot service journalled (bound, released, quarantined)",
		Flags: []cli.Flag{dhcpStateFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return badUsage(c, "unexpected argument %q", c.Args().First())
			}
			dir := c.String("dhcp-state")
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return badUsage(c, "--dhcp-state %s: not a directory (the netboot service's DHCP state directory)", dir)
			}
			leases, err := netboot.ReadLeases(dir)
			if err != nil {
				return err
			}
			slices.SortFunc(leases, func(a, b netboot.Lease) int { return a.IP.Compare(b.IP) })
			if c.Bool("json") {
				if leases == nil {
					leases = []netboot.Lease{}
				}
				return writeJSON(c.App.Writer, leases)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IP\tMAC\tSUBNET\tSTATE\tUNTIL")
			for _, l := range leases {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.IP, dash(l.MAC), l.Subnet, l.State, l.Expires.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// openDiscovery opens the discovery store of --dhcp-state, which must exist
// (a typo must not look like "nothing discovered").
func openDiscovery(c *cli.Context) (*netboot.DiscoveryStore, error) {
	dir := c.String("dhcp-state")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, badUsage(c, "--dhcp-state %s: not a directory (the netboot service's DHCP state directory)", dir)
	}
	return netboot.OpenDiscovery(dir)
}

func enrolCommand() *cli.Command {
	return &cli.Command{
		Name:      "enrol",
		Usage:     "adopt a discovered MAC into the inventory as a node; the netboot service then serves it its reservation",
		ArgsUsage: "MAC",
		Flags: []cli.Flag{
			inventoryFlag, dhcpStateFlag,
			&cli.StringFlag{Name: "node", Usage: "the new node's name"},
			&cli.StringFlag{Name: "ip", Usage: "its production IPv4 address (inside its rack's subnet)"},
			&cli.StringFlag{Name: "bmc-address", Usage: "its BMC, host or host:port"},
			&cli.StringFlag{Name: "bmc-driver", Value: "redfish", Usage: "redfish or ipmi"},
			&cli.StringFlag{Name: "rack", Usage: "its rack (default: the rack whose subnet discovered it)"},
			&cli.IntFlag{Name: "slot", Usage: "its slot (default: after the rack's last)"},
		},
		Before: func(c *cli.Context) error {
			return requireFlags(c, "inventory", "node", "ip", "bmc-address")
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return badUsage(c, "want exactly one MAC, got %d arguments", c.NArg())
			}
			mac, err := netboot.CanonicalMAC(c.Args().First())
			if err != nil {
				return badUsage(c, "%v", err)
			}
			if !inventory.ValidName(c.String("node")) {
				return badUsage(c, "--node %q is not a valid name", c.String("node"))
			}
			ds, err := openDiscovery(c)
			if err != nil {
				return err
			}
			d, err := ds.Get(mac)
			if errors.Is(err, netboot.ErrNotDiscovered) {
				return fmt.Errorf("%s was not discovered in %s (see rackflow discovered)", mac, c.String("dhcp-state"))
			}
			if err != nil {
				return err
			}
			inv, err := inventory.Load(c.String("inventory"))
			if err != nil {
				return err
			}
			rack := c.String("rack")
			if rack == "" {
				rack = d.Subnet
			}
			if _, ok := inv.Rack(rack); !ok {
				return badUsage(c, "rack %q is not in %s; name one with --rack", rack, inv.File())
			}
			slot := c.Int("slot")
			if slot == 0 {
				for _, n := range inv.Nodes {
					if n.Rack == rack && n.Slot > slot {
						slot = n.Slot
					}
				}
				slot++
			}
			n := inventory.Node{Name: c.String("node"), Rack: rack, Slot: slot, MACs: []string{mac}, IP: c.String("ip"),
				BMC: inventory.BMC{Driver: c.String("bmc-driver"), Address: c.String("bmc-address")}}
			if _, err := inventory.AddNode(inv.File(), n); err != nil {
				return fmt.Errorf("enrol %s: %w", mac, err)
			}
			if err := ds.Remove(mac); err != nil {
				return fmt.Errorf("enrolled %s as %s, but its discovery record stays: %w", mac, n.Name, err)
			}
			fmt.Fprintf(c.App.Writer, "enrolled %s as %s (rack %s, slot %d, ip %s) in %s\n", mac, n.Name, rack, slot, n.IP, inv.File())
			return nil
		},
	}
}

// netbootSubnets are the DHCP subnets of the racks named by --rack (every
// rack by default).
func netbootSubnets(c *cli.Context, inv *inventory.Inventory) ([]netboot.Subnet, error) {
	subs, err := inv.Subnets(c.StringSlice("rack")...)
	if err != nil {
		return nil, badUsage(c, "--rack: %v", err)
	}
	return subs, nil
}

// pxeAddr is --pxe, defaulting in proxy mode to port 4011 on --dhcp's host.
func pxeAddr(c *cli.Context) (string, error) {
	if c.IsSet("pxe") || c.String("dhcp-mode") != netboot.DHCPModeProxy || c.String("dhcp") == "" {
		return c.String("pxe"), nil
	}
	host, _, err := net.SplitHostPort(c.String("dhcp"))
	if err != nil {
		return "", badUsage(c, "--dhcp: %v", err)
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil {
		return "", badUsage(c, "--dhcp: host %q is not an IP address", host)
	}
	return net.JoinHostPort(host, fmt.Sprint(netboot.PXEPort)), nil
}
