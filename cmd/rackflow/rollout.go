package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

// pollEvery is how often `rollout watch` queries a rollout's progress.
const pollEvery = 500 * time.Millisecond

// queryTimeout bounds one progress query, so that a rollout no worker
// answers for does not freeze the display.
const queryTimeout = 5 * time.Second

func rolloutCommand() *cli.Command {
	subs := []*cli.Command{
		rolloutStartCommand(), rolloutWatchCommand(),
		rolloutSignalCommand("pause", "start no new nodes (running ones go on)", (*starter.Client).PauseRollout),
		rolloutSignalCommand("resume", "start nodes again after a pause", (*starter.Client).ResumeRollout),
		rolloutCancelCommand(), rolloutAddNodesCommand(), rolloutListCommand(), rolloutShowCommand(),
	}
	for _, s := range subs {
		s.OnUsageError = usageError
	}
	return &cli.Command{
		Name:        "rollout",
		Usage:       "roll an image version out to racks and nodes, and steer running rollouts",
		Subcommands: subs,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return badUsage(c, "unknown rollout command %q", c.Args().First())
			}
			return cli.ShowSubcommandHelp(c)
		},
	}
}

func rolloutStartCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "start a rollout of an image version to every node of some racks and/or to nodes",
		ArgsUsage: "[NODE…]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "rack", Usage: "every node of these racks (R,… or repeated)"},
			&cli.StringFlag{Name: "image", Usage: "golden image name"},
			&cli.StringFlag{Name: "version", Usage: "image version (snapshot)"},
			userFlag(),
			&cli.StringFlag{Name: "max-failures", Usage: "overall failure budget: nodes (5) or a percentage (5%); past it no new node starts (default: no limit)"},
			&cli.StringFlag{Name: "rack-max-failures", Usage: "failure budget of each rack, as --max-failures"},
			&cli.IntFlag{Name: "window", Usage: "most unfinished nodes per rack at once (0: the rack's in-flight limit)"},
			&cli.BoolFlag{Name: "replace", Usage: "re-provision nodes that run another image or version (their roots are replaced)"},
			&cli.BoolFlag{Name: "reinstall", Usage: "run Reinstall on every node instead of Provision: its root is destroyed and cloned again whatever it ran"},
			&cli.DurationFlag{Name: "check-in-timeout", Value: workflows.DefaultCheckInTimeout, Usage: "per boot"},
			&cli.StringFlag{Name: "id", Usage: "rollout ID (default: date-time-random, e.g. 20261120-2315-ab12)"},
			&cli.BoolFlag{Name: "watch", Usage: "then follow the rollout as rollout watch does: exit 1 unless it completes"},
		},
		Action: func(c *cli.Context) error {
			nodes, err := positional(c)
			if err != nil {
				return err
			}
			if err := requireFlags(c, "image", "version"); err != nil {
				return err
			}
			sel, err := selector(c, nodes)
			if err != nil {
				return err
			}
			in := workflows.RolloutInput{
				ID: c.String("id"), Selector: sel, Image: c.String("image"), Version: c.String("version"),
				Window: c.Int("window"), CheckInTimeout: c.Duration("check-in-timeout"), ReplaceRoots: c.Bool("replace"),
				Reinstall: c.Bool("reinstall"), User: c.String("user"),
			}
			if in.Reinstall && in.ReplaceRoots {
				return badUsage(c, "--reinstall replaces every root: drop --replace")
			}
			for _, v := range []string{in.Image, in.Version} {
				if !inventory.ValidName(v) {
					return badUsage(c, "%q is not a valid name ([a-z0-9][a-z0-9._-]*)", v)
				}
			}
			if c.IsSet("id") && !inventory.ValidName(in.ID) {
				return badUsage(c, "--id %q is not a valid rollout ID ([a-z0-9][a-z0-9._-]*)", in.ID)
			}
			if in.Window < 0 {
				return badUsage(c, "--window %d: want 0 or more", in.Window)
			}
			if in.CheckInTimeout <= 0 {
				return badUsage(c, "--check-in-timeout %s: want a positive duration", in.CheckInTimeout)
			}
			if in.MaxFailures, err = workflows.ParseFailureBudget(c.String("max-failures")); err != nil {
				return badUsage(c, "--max-failures: %v", err)
			}
			if in.RackMaxFailures, err = workflows.ParseFailureBudget(c.String("rack-max-failures")); err != nil {
				return badUsage(c, "--rack-max-failures: %v", err)
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			run, err := cl.StartRollout(c.Context, in)
			if err != nil {
				return err
			}
			id := starter.RolloutIDOf(run.WorkflowID)
			if c.Bool("watch") {
				if !c.Bool("json") {
					fmt.Fprintf(c.App.Writer, "rollout %s started: %s → %s@%s\n", id, starter.DescribeSelector(sel), in.Image, in.Version)
				}
				return watchAndReport(c, cl, id, pollEvery)
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, map[string]string{"id": id, "workflow_id": run.WorkflowID, "run_id": run.RunID})
			}
			fmt.Fprintf(c.App.Writer, "rollout %s started: %s → %s@%s (workflow %s run %s)\nfollow it: rackflow rollout watch %s\n",
				id, starter.DescribeSelector(sel), in.Image, in.Version, run.WorkflowID, run.RunID, id)
			return nil
		},
	}
}

func rolloutWatchCommand() *cli.Command {
	return &cli.Command{
		Name:      "watch",
		Usage:     "show a rollout's progress per rack until it ends, then its report; exit 1 unless it completed",
		ArgsUsage: "ID",
		Action: func(c *cli.Context) error {
			return withRollout(c, func(cl *starter.Client, id string) error { return watchAndReport(c, cl, id, pollEvery) })
		},
	}
}

// rolloutSignalCommand is a command that sends one argument-less signal.
func rolloutSignalCommand(name, usage string, send func(*starter.Client, context.Context, string) error) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "ID",
		Action: rolloutRequest(false, func(c *cli.Context, cl *starter.Client, id string, _ []string) (string, error) {
			return name + " requested", send(cl, c.Context, id)
		}),
	}
}

// rolloutRequest is the action of a command that sends one request to a
// rollout: it reads the ID (and, with more, further arguments), dials
// Temporal, runs do and prints "rollout ID: <what do returned>".
// withRollout reads the one rollout ID argument, dials Temporal and runs fn.
func withRollout(c *cli.Context, fn func(cl *starter.Client, id string) error) error {
	id, _, err := rolloutArgs(c, false)
	if err != nil {
		return err
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(cl, id)
}

func rolloutRequest(more bool, do func(c *cli.Context, cl *starter.Client, id string, rest []string) (string, error)) cli.ActionFunc {
	return func(c *cli.Context) error {
		id, rest, err := rolloutArgs(c, more)
		if err != nil {
			return err
		}
		cl, err := dial(c)
		if err != nil {
			return err
		}
		defer cl.Close()
		what, err := do(c, cl, id, rest)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "rollout %s: %s\n", id, what)
		return nil
	}
}

func rolloutCancelCommand() *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "start no new nodes and end the rollout as cancelled; running nodes finish, or are undone with --undo",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "undo", Usage: "cancel running nodes too: their Provision undoes its steps"},
		},
		Action: rolloutRequest(false, func(c *cli.Context, cl *starter.Client, id string, _ []string) (string, error) {
			what := "cancel requested (running nodes finish)"
			if c.Bool("undo") {
				what = "cancel requested (running nodes are undone)"
			}
			return what, cl.CancelRollout(c.Context, id, c.Bool("undo"))
		}),
	}
}

func rolloutAddNodesCommand() *cli.Command {
	return &cli.Command{
		Name:      "add-nodes",
		Usage:     "add the nodes of racks and/or named nodes to a running rollout",
		ArgsUsage: "ID [NODE…]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "rack", Usage: "every node of these racks (R,… or repeated)"},
		},
		Action: func(c *cli.Context) error {
			// The selector is checked before rolloutRequest dials Temporal.
			_, nodes, err := rolloutArgs(c, true)
			if err != nil {
				return err
			}
			sel, err := selector(c, nodes)
			if err != nil {
				return err
			}
			return rolloutRequest(true, func(c *cli.Context, cl *starter.Client, id string, _ []string) (string, error) {
				return "add-nodes requested (" + starter.DescribeSelector(sel) + ")", cl.AddRolloutNodes(c.Context, id, sel)
			})(c)
		},
	}
}

func rolloutListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list rollouts, newest first",
		Action: func(c *cli.Context) error {
			if _, err := rolloutNoArgs(c); err != nil {
				return err
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			rs, err := cl.ListRollouts(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, rs)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tIMAGE\tVERSION\tSTARTED\tENDED")
			for _, r := range rs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Image, r.Version, clock(r.Start), clock(r.Close))
			}
			return tw.Flush()
		},
	}
}

func rolloutShowCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "print a rollout's report (state, counts, every failed node); of a running rollout, its progress so far",
		ArgsUsage: "ID",
		Action: func(c *cli.Context) error {
			return withRollout(c, func(cl *starter.Client, id string) error {
				s, err := cl.DescribeRollout(c.Context, id)
				if err != nil {
					return err
				}
				if s.State == workflows.RolloutRunning {
					p, err := cl.RolloutProgress(c.Context, id)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return writeJSON(c.App.Writer, p)
					}
					return printSnapshot(c.App.Writer, p)
				}
				res, err := cl.WaitRollout(c.Context, id)
				if err != nil {
					return err
				}
				return report(c, res)
			})
		},
	}
}

// positional returns the command's arguments after applying the flags that
// follow them: urfave/cli v2 stops parsing flags at the first argument, and
// operators type "cancel ID --undo" or "show ID --json" (global flags are
// found too). "--" ends the flags. An unknown flag or
// a bad or missing value is a usage error.
func positional(c *cli.Context) ([]string, error) {
	args := c.Args().Slice()
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			out = append(out, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		flag := lookupFlag(c, name)
		if flag == nil {
			return nil, badUsage(c, "flag provided but not defined: %s", a)
		}
		if _, isBool := flag.(*cli.BoolFlag); isBool && !hasValue {
			value, hasValue = "true", true
		}
		if !hasValue {
			if i+1 == len(args) {
				return nil, badUsage(c, "flag needs an argument: %s", a)
			}
			i++
			value = args[i]
		}
		if err := c.Set(flag.Names()[0], value); err != nil {
			return nil, badUsage(c, "invalid value %q for flag %s: %v", value, a, err)
		}
	}
	return out, nil
}

// lookupFlag finds the flag called name among the command's flags and
// those of its parents (global flags such as --json), or nil.
func lookupFlag(c *cli.Context, name string) cli.Flag {
	var flags []cli.Flag
	for _, l := range c.Lineage() {
		if l.Command != nil {
			flags = append(flags, l.Command.Flags...)
		}
	}
	flags = append(flags, c.App.Flags...)
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// rolloutArgs reads "ID" (or "ID NODE…" when more is true), validating the ID.
func rolloutArgs(c *cli.Context, more bool) (id string, rest []string, err error) {
	args, err := positional(c)
	if err != nil {
		return "", nil, err
	}
	switch {
	case len(args) == 0:
		return "", nil, badUsage(c, "name the rollout ID")
	case len(args) > 1 && !more:
		return "", nil, badUsage(c, "unexpected argument %q", args[1])
	case !inventory.ValidName(args[0]):
		return "", nil, badUsage(c, "%q is not a valid rollout ID", args[0])
	}
	return args[0], args[1:], nil
}

// rolloutNoArgs checks that the command got no argument.
func rolloutNoArgs(c *cli.Context) ([]string, error) {
	args, err := positional(c)
	if err == nil && len(args) > 0 {
		err = badUsage(c, "unexpected argument %q", args[0])
	}
	return args, err
}

// selector builds a Selector from --rack and node arguments: valid names,
// duplicates dropped, at least one rack or node.
func selector(c *cli.Context, nodes []string) (workflows.Selector, error) {
	var sel workflows.Selector
	for _, r := range c.StringSlice("rack") {
		if !inventory.ValidName(r) {
			return sel, badUsage(c, "%q is not a valid rack name", r)
		}
		if !slices.Contains(sel.Racks, r) {
			sel.Racks = append(sel.Racks, r)
		}
	}
	for _, n := range nodes {
		if !inventory.ValidName(n) {
			return sel, badUsage(c, "%q is not a valid node name", n)
		}
		if !slices.Contains(sel.Nodes, n) {
			sel.Nodes = append(sel.Nodes, n)
		}
	}
	if len(sel.Racks) == 0 && len(sel.Nodes) == 0 {
		return sel, badUsage(c, "name racks with --rack or nodes as arguments")
	}
	return sel, nil
}
