package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/worker"

	"github.com/rackflow/rackflow/activities"
	"github.com/rackflow/rackflow/activities/imagestore"
	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/activities/ownership"
	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/netboot/swarm"
	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workers"
	"github.com/rackflow/rackflow/workflows"
)

var (
	inventoryFlag  = &cli.StringFlag{Name: "inventory", Usage: "inventory YAML file"}
	checkInKeyFlag = &cli.StringFlag{Name: "checkin-key", Usage: "file holding the HMAC key of check-in tokens (≥ 16 bytes), shared by worker and netboot"}
	storeFlag      = &cli.StringFlag{Name: "netboot-store", Value: "/var/lib/rackflow/netboot", Usage: "boot-profile and export directory shared with the netboot service"}
)

// swarmFlags are the image-transport flags of `rackflow dev` and
// `rackflow worker`.
func swarmFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "image-transport", Value: "swarm", Usage: "how nodes download images: swarm (BitTorrent with the netboot HTTP export as web seed) or http (plain HTTP only)"},
		&cli.DurationFlag{Name: "seed-for", Value: 10 * time.Minute, Usage: "how long nodes keep seeding after checking in (swarm; stops earlier when the export is withdrawn)"},
		&cli.Int64Flag{Name: "swarm-upload-rate", Usage: "bytes/s the image seeder sends to peers at most (0: unlimited)"},
		&cli.Int64Flag{Name: "node-upload-rate", Usage: "bytes/s each node sends to peers at most (0: unlimited)"},
	}
}

func checkSwarmFlags(c *cli.Context) error {
	switch t := c.String("image-transport"); {
	case t != "swarm" && t != "http":
		return badUsage(c, "--image-transport %q: want swarm or http", t)
	case c.Duration("seed-for") < 0:
		return badUsage(c, "--seed-for %s: want a duration ≥ 0", c.Duration("seed-for"))
	case c.Int64("swarm-upload-rate") < 0 || c.Int64("node-upload-rate") < 0:
		return badUsage(c, "--swarm-upload-rate and --node-upload-rate must not be negative")
	}
	return nil
}

// serviceSetup loads what the worker and the netboot service share: the
// logger, the inventory and the check-in key.
func serviceSetup(c *cli.Context) (*slog.Logger, *inventory.Inventory, []byte, error) {
	log, err := logger(c)
	if err != nil {
		return nil, nil, nil, err
	}
	inv, err := inventory.Load(c.String("inventory"))
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := readCheckInKey(c.String("checkin-key"))
	return log, inv, key, err
}

func readCheckInKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("check-in key: %w", err)
	}
	if len(key) < netboot.MinCheckInKeyLen {
		return nil, fmt.Errorf("check-in key %s: %d bytes, want at least %d", path, len(key), netboot.MinCheckInKeyLen)
	}
	return key, nil
}

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "run the workflows and the activities of the given racks against a Temporal cluster",
		Before: func(c *cli.Context) error {
			if err := requireFlags(c, "inventory", "checkin-key", "http-base"); err != nil {
				return err
			}
			return checkSwarmFlags(c)
		},
		Flags: append([]cli.Flag{
			inventoryFlag, checkInKeyFlag, storeFlag,
			&cli.StringSliceFlag{Name: "rack", Usage: "serve this rack's task queue (repeatable; default every rack of the inventory)"},
			&cli.StringFlag{Name: "zfs-pool", Usage: "ZFS dataset under which images and roots live (selects the zfs backend)"},
			&cli.StringFlag{Name: "image-dir", Value: "/var/lib/rackflow/images", Usage: "image directory of the dir backend (used without --zfs-pool)"},
			&cli.StringFlag{Name: "http-base", Usage: "netboot HTTP URL the nodes reach, e.g. http://10.0.0.1:8880"},
			&cli.StringFlag{Name: "kernel", Value: "vmlinuz", Usage: "installer kernel, under the netboot artifacts"},
			&cli.StringFlag{Name: "initrd", Value: "initrd.img", Usage: "installer initrd, under the netboot artifacts"},
			&cli.StringSliceFlag{Name: "kernel-arg", Usage: "extra kernel command-line word (repeatable), e.g. console=ttyS0"},
			&cli.StringFlag{Name: "swarm-listen", Value: "0.0.0.0:6881", Usage: "TCP address the image seeder accepts peers on (swarm transport)"},
		}, append(swarmFlags(), ldapFlags()...)...), // ldap: the ownership directory, bound as the worker's service account
		Action: func(c *cli.Context) error {
			log, inv, key, err := serviceSetup(c)
			if err != nil {
				return err
			}
			owners, err := workerOwnership(c, log)
			if err != nil {
				return err
			}
			var images activities.ImageStore
			if pool := c.String("zfs-pool"); pool != "" {
				images, err = imagestore.NewZFS(pool, log)
			} else {
				images, err = imagestore.NewDir(c.String("image-dir"), log)
			}
			if err != nil {
				return err
			}
			log.Info("image store", "backend", images.Backend())
			boot, err := netboot.OpenStore(c.String("netboot-store"))
			if err != nil {
				return err
			}
			cl, err := starter.Dial(c.Context, c.String("temporal-address"), c.String("namespace"), log)
			if err != nil {
				return err
			}
			defer cl.Close()
			acts := &activities.Activities{
				Inventory: inv, Current: inventory.NewReloading(inv, log).Current,
				Permits: cl, Images: images, Boot: boot, DialBMC: activities.DialBMCLib(log),
				HTTPBase: c.String("http-base"), CheckInKey: key, Kernel: c.String("kernel"), Initrd: c.String("initrd"),
				KernelArgs: c.StringSlice("kernel-arg"), Ownership: owners, Log: log,
				SeedFor: c.Duration("seed-for"), NodeUploadRate: c.Int64("node-upload-rate"),
			}
			racks := c.StringSlice("rack")
			if len(racks) == 0 {
				racks = inv.RackNames()
			}
			ws := []worker.Worker{workers.Global(cl.Temporal(), acts, workers.Options{})}
			for _, r := range racks {
				if _, ok := inv.Rack(r); !ok {
					return badUsage(c, "--rack %s: not in %s", r, inv.File())
				}
				ws = append(ws, workers.Rack(cl.Temporal(), r, acts, workers.Options{}))
			}
			if c.String("image-transport") == "swarm" {
				seeder, err := swarm.NewSeeder(swarm.SeederConfig{ListenAddr: c.String("swarm-listen"),
					Announce: c.String("http-base") + "/announce", UploadRate: c.Int64("swarm-upload-rate"), Logger: log})
				if err != nil {
					return err
				}
				defer seeder.Close()
				acts.Swarm = seeder
			}
			set, err := workers.Start(ws...)
			if err != nil {
				return err
			}
			defer set.Stop()
			log.Warn("worker running", "racks", racks, "temporal", c.String("temporal-address"))
			<-c.Context.Done()
			return nil
		},
	}
}

// workerOwnership is the worker's ownership directory from the --ldap-*
// flags, bound as a service account that reads every server entry and
// clears owners (an admin of the directory), checked by one bind at start.
// Without --ldap-url the worker has none: runs that name a user then fail
// with OwnershipNotConfigured, runs that name none are not checked.
func workerOwnership(c *cli.Context, log *slog.Logger) (activities.Ownership, error) {
	if c.String("ldap-url") == "" {
		log.Warn("no ownership directory (--ldap-url): operations that name a user fail with " + workflows.ErrOwnershipNotConfigured)
		return nil, nil
	}
	cfg, err := ldapConfig(c)
	if err != nil {
		return nil, err
	}
	cl, err := ownership.Dial(c.Context, cfg)
	if err != nil {
		return nil, fmt.Errorf("ownership directory: %w", err)
	}
	_ = cl.Close()
	log.Info("ownership directory", "ldap", cfg)
	return activities.LDAPOwnership{Config: cfg}, nil
}

func netbootCommand() *cli.Command {
	return &cli.Command{
		Name:  "netboot",
		Usage: "run the DHCP, TFTP and HTTP netboot service of a rack",
		Before: func(c *cli.Context) error {
			if m := c.String("dhcp-mode"); m != netboot.DHCPModeReservation && m != netboot.DHCPModeProxy {
				return badUsage(c, "--dhcp-mode %q: want %s or %s", m, netboot.DHCPModeReservation, netboot.DHCPModeProxy)
			}
			return requireFlags(c, "inventory", "checkin-key")
		},
		Flags: []cli.Flag{
			inventoryFlag, checkInKeyFlag, storeFlag,
			&cli.StringFlag{Name: "dhcp", Value: "0.0.0.0:67", Usage: "DHCP listen address (empty: off)"},
			&cli.StringFlag{Name: "tftp", Value: "0.0.0.0:69", Usage: "TFTP listen address (empty: off)"},
			&cli.StringFlag{Name: "http", Value: "0.0.0.0:8880", Usage: "HTTP listen address"},
			&cli.StringFlag{Name: "server-ip", Usage: "address nodes reach this service at (next-server)"},
			&cli.StringFlag{Name: "tftp-root", Usage: "directory served read-only over TFTP before the iPXE directory (empty: the iPXE directory only)"},
			&cli.StringFlag{Name: "ipxe-dir", Value: netboot.DefaultIPXEDir, Usage: "iPXE boot images served over TFTP by base name (Debian's ipxe package)"},
			&cli.UintFlag{Name: "tftp-anticipate", Usage: "send this many TFTP data blocks before waiting for their ACKs (pin/tftp's experimental sender anticipation, 2..60; every block is still ACKed, nothing is negotiated); 0: lockstep, RFC 1350"},
			&cli.StringFlag{Name: "artifacts", Value: "/var/lib/rackflow/artifacts", Usage: "kernels and initrds served at /artifacts/"},
			&cli.StringFlag{Name: "dhcp-mode", Value: netboot.DHCPModeReservation, Usage: "reservation (authoritative: reservations and the racks' pools) or proxy (proxyDHCP beside a site DHCP server: PXE boot information only)"},
			&cli.StringFlag{Name: "pxe", Usage: "proxy mode: PXE boot-server listen address (default: --dhcp's host, port 4011)"},
			&cli.StringSliceFlag{Name: "rack", Usage: "serve this rack's subnet, pool and unknown-MAC policy (repeatable; default every rack)"},
			dhcpStateFlag,
		},
		Action: func(c *cli.Context) error {
			log, inv, key, err := serviceSetup(c)
			if err != nil {
				return err
			}
			subnets, err := netbootSubnets(c, inv)
			if err != nil {
				return err
			}
			pxe, err := pxeAddr(c)
			if err != nil {
				return err
			}
			cl, err := starter.Dial(c.Context, c.String("temporal-address"), c.String("namespace"), log)
			if err != nil {
				return err
			}
			defer cl.Close()
			svc, err := netboot.New(netboot.Config{
				DHCPMode: c.String("dhcp-mode"), PXEAddr: pxe, Subnets: subnets, DHCPStateDir: c.String("dhcp-state"),
				DHCPAddr: c.String("dhcp"), TFTPAddr: c.String("tftp"), HTTPAddr: c.String("http"),
				ServerIP: c.String("server-ip"), TFTPRoot: c.String("tftp-root"), IPXEDir: c.String("ipxe-dir"),
				TFTPAnticipate: c.Uint("tftp-anticipate"), ArtifactsDir: c.String("artifacts"), StoreDir: filepath.Clean(c.String("netboot-store")),
				CheckInKey: key, Reservations: inventory.NewReloading(inv, log), Signaler: cl, Identifier: cl, Logger: log,
				Tracker: swarm.NewTracker(0), // announces of the worker's seeder and the nodes
			})
			if err != nil {
				return err
			}
			return svc.Run(c.Context)
		},
	}
}
