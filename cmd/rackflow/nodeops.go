package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/starter"
)

// nodeOp is one kind of per-node operation the CLI starts: start begins it
// on a node, wait blocks until it ends and returns the line to print.
type nodeOp struct {
	start func(cl *starter.Client, node string) (starter.Run, error)
	wait  func(cl *starter.Client, r starter.Run) (string, error)
}

// runNodeOps validates the node arguments (and the extra names), starts op
// on each node, waits for all of them when --wait is set, and exits 1
// naming how many failed.
func runNodeOps(c *cli.Context, op nodeOp, names ...string) error {
	nodes := c.Args().Slice()
	if len(nodes) == 0 {
		return badUsage(c, "name at least one node")
	}
	for _, v := range append(names, nodes...) {
		if !inventory.ValidName(v) {
			return badUsage(c, "%q is not a valid name ([a-z0-9][a-z0-9._-]*)", v)
		}
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	var runs []starter.Run
	failed := 0
	for _, n := range nodes {
		run, err := op.start(cl, n)
		if err != nil {
			failed++
			fmt.Fprintf(c.App.ErrWriter, "%s: %v\n", n, err)
			continue
		}
		fmt.Fprintf(c.App.Writer, "%s: started %s (run %s)\n", n, run.WorkflowID, run.RunID)
		runs = append(runs, run)
	}
	if c.Bool("wait") {
		for _, r := range runs {
			line, err := op.wait(cl, r)
			if err != nil {
				failed++
				fmt.Fprintf(c.App.ErrWriter, "%s: %v\n", r.WorkflowID, err)
				continue
			}
			fmt.Fprintln(c.App.Writer, line)
		}
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("%d of %d nodes failed", failed, len(nodes)), 1)
	}
	return nil
}

// userFlag is the requesting user of a node operation: the worker checks in
// the ownership directory that this DN owns each node or is a member
// (NotOwner otherwise). It defaults to the DN the ownership commands bind
// as; empty means no check.
func userFlag() cli.Flag {
	return &cli.StringFlag{Name: "user", EnvVars: []string{"RACKFLOW_LDAP_BIND_DN"},
		Usage: "your DN: the worker checks in the directory that you own each node or are a member (empty: no check)"}
}
