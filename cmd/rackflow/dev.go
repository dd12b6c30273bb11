package main

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/dev"
	devtemporal "github.com/rackflow/rackflow/dev/temporal"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run the embedded default: Temporal + Web UI, worker, netboot and a virtual rack, then provision every node",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "state-dir", Value: ".rackflow", Usage: "where the Temporal database, images, leases and keys live"},
			&cli.StringFlag{Name: "inventory", Usage: "inventory file (default: generate one for the virtual rack in the state dir)"},
			&cli.IntFlag{Name: "racks", Value: 1, Usage: "virtual racks (r01, r02, …)"},
			&cli.IntFlag{Name: "nodes", Value: 8, Usage: "virtual nodes per rack"},
			&cli.BoolFlag{Name: "once", Usage: "exit after the rollout: status 0 only if every node is provisioned"},
			&cli.StringFlag{Name: "ui", Value: devtemporal.DefaultUIAddr, Usage: "Temporal Web UI address (empty: no UI)"},
			&cli.StringFlag{Name: "dhcp", Value: "127.0.0.1:6767", Usage: "DHCP listen address"},
			&cli.StringFlag{Name: "tftp", Value: "127.0.0.1:6969", Usage: "TFTP listen address"},
			&cli.StringFlag{Name: "http", Value: "127.0.0.1:8880", Usage: "netboot HTTP listen address"},
			&cli.StringFlag{Name: "image-store", Usage: "zfs or dir (default: zfs when zfs-fuse is installed)"},
			&cli.StringFlag{Name: "rig", Value: dev.RigVirtual, Usage: "virtual (pure-Go nodes, Redfish BMC emulators) or qemu (QEMU machines that PXE-boot through iPXE, ipmi_sim BMCs; root, one rack)"},
			&cli.StringFlag{Name: "firmware", Value: "bios", Usage: "qemu rig firmware: bios (SeaBIOS + iPXE ROM), uefi (OVMF PXE → TFTP ipxe.efi → iPXE) or mixed (odd nodes bios, even uefi)"},
			&cli.BoolFlag{Name: "ldap", Usage: "run a throwaway slapd with HOP-SCOTCH's ownership rules and a server entry per node (rackflow checkout/release/owners)"},
			&cli.StringFlag{Name: "agent", Usage: "rackflow-agent binary for the qemu rig's initramfs (default: beside this executable)"},
			&cli.DurationFlag{Name: "check-in-timeout", Value: 10 * time.Minute, Usage: "how long each boot may take to check in"},
		}, swarmFlags()...),
		Subcommands: []*cli.Command{{
			Name:         "usb-insert",
			OnUsageError: usageError,
			Usage: "plug a USB thumb drive into a node of the running `rackflow dev` (virtual rack: its virtual USB port; " +
				"qemu rig: a usb-storage hot-plug over the VM's QMP socket); a node in identify mode then asks for its identity",
			ArgsUsage: "NODE",
			Flags:     []cli.Flag{&cli.StringFlag{Name: "state-dir", Value: ".rackflow", Usage: "the state dir of the running rackflow dev"}},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 || !inventory.ValidName(c.Args().First()) {
					return badUsage(c, "name one node")
				}
				node := c.Args().First()
				serial, rig, err := dev.USBInsert(c.Context, c.String("state-dir"), node)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(c.App.Writer, "%s: USB drive %s inserted (%s rig)\n", node, serial, rig)
				return err
			},
		}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return badUsage(c, "unexpected argument %q", c.Args().First())
			}
			if n := c.Int("nodes"); n < 1 || n > 65000 {
				return badUsage(c, "--nodes %d: want 1…65000", n)
			}
			if r := c.Int("racks"); r < 1 || r > 99 {
				return badUsage(c, "--racks %d: want 1…99", r)
			}
			if err := checkSwarmFlags(c); err != nil {
				return err
			}
			log, err := logger(c)
			if err != nil {
				return err
			}
			out := c.App.Writer
			env, err := dev.Start(c.Context, dev.Options{
				StateDir: c.String("state-dir"), Inventory: c.String("inventory"),
				Racks: c.Int("racks"), Nodes: c.Int("nodes"),
				FrontendAddr: c.String("temporal-address"), UIAddr: c.String("ui"),
				DHCPAddr: c.String("dhcp"), TFTPAddr: c.String("tftp"), HTTPAddr: c.String("http"),
				Store: c.String("image-store"), CheckInTimeout: c.Duration("check-in-timeout"), Log: log,
				Rig: c.String("rig"), Agent: c.String("agent"), RigFirmware: c.String("firmware"), LDAP: c.Bool("ldap"),
				ImageTransport: c.String("image-transport"), SeedFor: c.Duration("seed-for"),
				SwarmUploadRate: c.Int64("swarm-upload-rate"), NodeUploadRate: c.Int64("node-upload-rate"),
			})
			if err != nil {
				return err
			}
			defer env.Close()
			version, err := dev.LatestVersion(c.Context, env.Images, dev.DemoImage)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "temporal  %s (namespace %s)\n", env.Temporal.FrontendAddr(), env.Temporal.Namespace())
			if ui := env.Temporal.UIURL(); ui != "" {
				fmt.Fprintf(out, "web ui    %s\n", ui)
			}
			fmt.Fprintf(out, "netboot   dhcp %s  tftp %s  http %s\n", env.Netboot.DHCPAddr(), env.Netboot.TFTPAddr(), env.Netboot.HTTPBase())
			fmt.Fprintf(out, "images    %s backend, provisioning %s@%s\n", env.Images.Backend(), dev.DemoImage, version)
			fmt.Fprintf(out, "inventory %s: %d nodes in %d racks\n", env.Inventory.File(), len(env.Inventory.Nodes), len(env.Inventory.Racks))
			if env.LDAP != nil {
				fmt.Fprintf(out, "ldap      %s base %s (--ldap-url, --ldap-base); users and their --ldap-password-file:\n", env.LDAP.URL, env.LDAP.BaseDN)
				for _, dn := range slices.Sorted(maps.Keys(env.LDAPUsers())) {
					fmt.Fprintf(out, "          %s  %s\n", dn, env.LDAPUsers()[dn])
				}
			}
			if env.QEMU != nil {
				fmt.Fprintf(out, "qemu rig  namespace %s; serial consoles %s\n", env.QEMU.Namespace(), filepath.Join(filepath.Dir(env.QEMU.Nodes[0].Dir), "*", "console.log"))
			}
			sum, err := env.ProvisionAll(c.Context, dev.DemoImage, version, out)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, sum)
			if tls, err := env.Timelines(); err != nil {
				fmt.Fprintf(out, "timeline: %v\n", err)
			} else if len(tls) > 0 {
				fmt.Fprintln(out, "boot timeline, seconds after the BMC's power-on (- = step not taken):")
				for _, t := range tls {
					fmt.Fprintln(out, "  "+t.String())
				}
			}
			verified := true
			if env.QEMU != nil {
				var lines []string
				lines, verified = env.VerifyDisks(c.Context)
				for _, l := range lines {
					fmt.Fprintln(out, l)
				}
			}
			if c.Bool("once") {
				if len(sum.Failed) > 0 || sum.Provisioned != sum.Total || !verified {
					return cli.Exit("", 1)
				}
				return nil
			}
			fmt.Fprintln(out, "serving; press Ctrl-C to stop")
			<-c.Context.Done()
			return nil
		},
	}
}
