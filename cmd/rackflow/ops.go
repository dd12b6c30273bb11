package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rackflow/rackflow/activities/imagestore"
	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/dev"
	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

func dial(c *cli.Context) (*starter.Client, error) {
	log, err := logger(c)
	if err != nil {
		return nil, err
	}
	return starter.Dial(c.Context, c.String("temporal-address"), c.String("namespace"), log)
}

func provisionCommand() *cli.Command {
	return &cli.Command{
		Name:      "provision",
		Usage:     "provision nodes with an image version (one Provision workflow per node)",
		ArgsUsage: "NODE…",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "image", Usage: "golden image name"},
			&cli.StringFlag{Name: "version", Usage: "image version (snapshot)"},
			&cli.DurationFlag{Name: "check-in-timeout", Value: workflows.DefaultCheckInTimeout, Usage: "per boot"},
			&cli.BoolFlag{Name: "wait", Usage: "wait for every node and exit 1 if any failed"},
			&cli.BoolFlag{Name: "replace", Usage: "replace a root of another image or version (its data is lost)"},
			userFlag(),
		},
		Before: func(c *cli.Context) error {
			return requireFlags(c, "image", "version")
		},
		Action: func(c *cli.Context) error {
			return runNodeOps(c, nodeOp{
				start: func(cl *starter.Client, n string) (starter.Run, error) {
					return cl.Provision(c.Context, workflows.ProvisionInput{
						Node: n, Image: c.String("image"), Version: c.String("version"), CheckInTimeout: c.Duration("check-in-timeout"),
						ReplaceRoot: c.Bool("replace"), User: c.String("user"),
					})
				},
				wait: func(cl *starter.Client, r starter.Run) (string, error) {
					res, err := cl.WaitProvision(c.Context, r)
					return fmt.Sprintf("provisioned %s@%s", res.Image, res.Version), err
				},
			}, c.String("image"), c.String("version"))
		},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show each node's latest operation: phase, image, version, since",
		ArgsUsage: "[NODE…]",
		Action: func(c *cli.Context) error {
			for _, n := range c.Args().Slice() {
				if !inventory.ValidName(n) {
					return badUsage(c, "%q is not a valid node name", n)
				}
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			st, err := cl.Status(c.Context, c.Args().Slice())
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, st)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tRACK\tPHASE\tIMAGE\tVERSION\tSTATUS\tSINCE")
			for _, s := range st {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Node, s.Rack, s.Phase, s.Image, s.Version, s.Status, s.Since.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
}

func imagesCommand() *cli.Command {
	return &cli.Command{
		Name:  "images",
		Usage: "list golden images and their versions in this host's image store",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "zfs-pool", Usage: "ZFS dataset under which images live (selects the zfs backend)"},
			&cli.StringFlag{Name: "image-dir", Usage: "image directory of the dir backend"},
			&cli.StringFlag{Name: "state-dir", Value: ".rackflow", Usage: "without --zfs-pool or --image-dir: the image store of `rackflow dev` in this state dir"},
		},
		Action: func(c *cli.Context) error {
			log, err := logger(c)
			if err != nil {
				return err
			}
			var s imagestore.Store
			switch {
			case c.String("zfs-pool") != "":
				s, err = imagestore.NewZFS(c.String("zfs-pool"), log)
			case c.String("image-dir") != "":
				s, err = imagestore.NewDir(c.String("image-dir"), log)
			default:
				var closeStore func() error
				s, closeStore, err = dev.OpenImageStore(c.Context, c.String("state-dir"), "", log)
				if err == nil {
					defer closeStore()
				}
			}
			if err != nil {
				return err
			}
			imgs, err := s.Images(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, imgs)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tVERSION\tSIZE\tCREATED\tDIGEST")
			for _, img := range imgs {
				for _, v := range img.Versions {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", img.Name, v.Name, v.Size, v.Created.Local().Format(time.DateTime), v.Digest)
				}
			}
			return tw.Flush()
		},
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
