package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

func reinstallCommand() *cli.Command {
	return &cli.Command{
		Name:      "reinstall",
		Usage:     "reinstall nodes: optionally drain through a webhook, destroy the root, provision again (one Reinstall workflow per node)",
		ArgsUsage: "NODE…",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "image", Usage: "golden image name"},
			&cli.StringFlag{Name: "version", Usage: "image version (snapshot)"},
			&cli.StringFlag{Name: "drain-url", Usage: "webhook asked to drain each node first; the reinstall waits for the drained signal (default: the rack's drain_url in the inventory)"},
			&cli.DurationFlag{Name: "drain-timeout", Value: workflows.DefaultDrainTimeout, Usage: "how long to wait for drained (then nothing is touched)"},
			&cli.DurationFlag{Name: "check-in-timeout", Value: workflows.DefaultCheckInTimeout, Usage: "per boot"},
			&cli.BoolFlag{Name: "wait", Usage: "wait for every node and exit 1 if any failed"},
			userFlag(),
		},
		Before: func(c *cli.Context) error {
			return requireFlags(c, "image", "version")
		},
		Action: func(c *cli.Context) error {
			return runNodeOps(c, nodeOp{
				start: func(cl *starter.Client, n string) (starter.Run, error) {
					return cl.Reinstall(c.Context, workflows.ReinstallInput{
						Node: n, Image: c.String("image"), Version: c.String("version"),
						DrainURL: c.String("drain-url"), DrainTimeout: c.Duration("drain-timeout"), CheckInTimeout: c.Duration("check-in-timeout"),
						User: c.String("user"),
					})
				},
				wait: func(cl *starter.Client, r starter.Run) (string, error) {
					res, err := cl.WaitReinstall(c.Context, r)
					return fmt.Sprintf("reinstalled %s@%s", res.Image, res.Version), err
				},
			}, c.String("image"), c.String("version"))
		},
	}
}

func drainedCommand() *cli.Command {
	return &cli.Command{
		Name:      "drained",
		Usage:     "tell a node's waiting Reinstall that the node is drained (what the drain webhook's system does)",
		ArgsUsage: "NODE",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 || !inventory.ValidName(c.Args().First()) {
				return badUsage(c, "name one node")
			}
			return withClient(c, func(cl *starter.Client) error { return cl.SignalDrained(c.Context, c.Args().First()) })
		},
	}
}

func identifyCommand() *cli.Command {
	scopeArg := func(c *cli.Context) (string, error) {
		if c.NArg() != 1 || !inventory.ValidName(c.Args().First()) {
			return "", badUsage(c, "name one scope (a rack or subnet label)")
		}
		return c.Args().First(), nil
	}
	// scoped builds the subcommands that act on one running scope.
	scoped := func(name, usage string, flags []cli.Flag, act func(cl *starter.Client, c *cli.Context, scope string) error) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: "SCOPE", Flags: flags,
			Action: func(c *cli.Context) error {
				scope, err := scopeArg(c)
				if err != nil {
					return err
				}
				return withClient(c, func(cl *starter.Client) error { return act(cl, c, scope) })
			},
		}
	}
	slot := []cli.Flag{&cli.IntFlag{Name: "slot", Usage: "the slot the command is meant for (ignored by the workflow when it is not)"}}
	return &cli.Command{
		Name:  "identify",
		Usage: "identify new machines by a physical act (USB thumb drive), assigning names and addresses in rack order (Purdue)",
		Subcommands: []*cli.Command{
			{
				Name:      "start",
				Usage:     "start identify/<SCOPE> with an address plan: a YAML list of {slot, name, ip} in rack order (slot optional)",
				ArgsUsage: "SCOPE",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "plan", Usage: "address plan file"},
					&cli.IntFlag{Name: "first-slot", Value: 1, Usage: "slot of the first entry without one"},
					&cli.StringFlag{Name: "rack", Usage: "inventory rack being identified: while it runs, the rack's unknown machines " +
						"(netboot unknown: enrol) boot the identify agent, and each confirmed machine is recorded in the inventory (MAC → node, no BMC)"},
				},
				Before: func(c *cli.Context) error { return requireFlags(c, "plan") },
				Action: func(c *cli.Context) error {
					scope, err := scopeArg(c)
					if err != nil {
						return err
					}
					plan, err := readPlan(c.String("plan"))
					if err != nil {
						return badUsage(c, "%v", err)
					}
					in, err := workflows.ValidateIdentifyInput(workflows.IdentifyInput{Scope: scope, Rack: c.String("rack"), FirstSlot: c.Int("first-slot"), Plan: plan})
					if err != nil {
						return badUsage(c, "%v", err)
					}
					return withClient(c, func(cl *starter.Client) error {
						run, err := cl.StartIdentify(c.Context, in)
						if err != nil {
							return err
						}
						_, err = fmt.Fprintf(c.App.Writer, "%s: started %s (run %s): %s\n", scope, run.WorkflowID, run.RunID, starter.IdentifySummary(in))
						return err
					})
				},
			},
			{
				Name: "boot",
				Usage: "boot inventory nodes into identify mode for a scope (one IdentifyBoot workflow per node): " +
					"their agent waits for a USB drive and asks identify/<scope> for its name and address",
				ArgsUsage: "NODE…",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "scope", Usage: "the identification the nodes ask (rack or subnet label)"},
					&cli.BoolFlag{Name: "wait", Usage: "wait until every node is booting and exit 1 if any failed"},
				},
				Before: func(c *cli.Context) error { return requireFlags(c, "scope") },
				Action: func(c *cli.Context) error {
					if !inventory.ValidName(c.String("scope")) {
						return badUsage(c, "--scope %q is not a valid scope ([a-z0-9][a-z0-9._-]*)", c.String("scope"))
					}
					return runNodeOps(c, nodeOp{
						start: func(cl *starter.Client, n string) (starter.Run, error) {
							return cl.IdentifyBoot(c.Context, workflows.IdentifyBootInput{Node: n, Scope: c.String("scope")})
						},
						wait: func(cl *starter.Client, r starter.Run) (string, error) {
							res, err := cl.WaitIdentifyBoot(c.Context, r)
							return "in identify mode for " + res.Scope + ": insert a USB drive", err
						},
					})
				},
			},
			scoped("skip", "the next position is dead on arrival: the next machine gets the one after", slot, func(cl *starter.Client, c *cli.Context, scope string) error {
				return cl.IdentifySkip(c.Context, scope, c.Int("slot"))
			}),
			scoped("undo", "take back the last assignment or skip (the wrong machine was identified)", slot, func(cl *starter.Client, c *cli.Context, scope string) error {
				return cl.IdentifyUndo(c.Context, scope, c.Int("slot"))
			}),
			scoped("finish", "end the identification; the result lists every assignment", nil, func(cl *starter.Client, c *cli.Context, scope string) error {
				return cl.IdentifyFinish(c.Context, scope)
			}),
			scoped("status", "show the positions assigned, skipped and next", nil, func(cl *starter.Client, c *cli.Context, scope string) error {
				st, err := cl.IdentifyStatus(c.Context, scope)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return writeJSON(c.App.Writer, st)
				}
				return printIdentifyStatus(c, st)
			}),
		},
	}
}

func printIdentifyStatus(c *cli.Context, st workflows.IdentifyStatus) error {
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tNAME\tIP\tMAC\tCONFIRMED\tINVENTORY")
	for _, a := range st.Assignments {
		confirmed := "-"
		if !a.Confirmed.IsZero() {
			confirmed = "from " + a.ConfirmedFrom
		}
		recorded := "-" // no --rack, or not confirmed yet
		switch {
		case a.RecordError != "":
			recorded = "not recorded: " + a.RecordError
		case a.Recorded:
			recorded = "recorded"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", a.Slot, a.Name, a.IP, a.MAC, confirmed, recorded)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	next := "none (every position is filled)"
	if st.Next != nil {
		next = fmt.Sprintf("slot %d (%s, %s)", st.Next.Slot, st.Next.Name, st.Next.IP)
	}
	_, err := fmt.Fprintf(c.App.Writer, "%s: %d of %d positions free, next %s, skipped %v\n", st.Scope, st.Remaining, st.Total, next, st.Skipped)
	return err
}

// readPlan reads an address plan: a YAML list of {slot, name, ip}.
func readPlan(path string) ([]workflows.PlanEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	var entries []struct {
		Slot int    `yaml:"slot"`
		Name string `yaml:"name"`
		IP   string `yaml:"ip"`
	}
	if err := yaml.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("plan %s: %w", path, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("plan %s: no entries", path)
	}
	plan := make([]workflows.PlanEntry, len(entries))
	for i, e := range entries {
		plan[i] = workflows.PlanEntry{Slot: e.Slot, Name: e.Name, IP: e.IP}
	}
	return plan, nil
}
