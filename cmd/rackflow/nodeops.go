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
	nodes, err := nodeArgs(c, false)
	if err != nil {
		return err
	}
	for _, v := range names {
		if !inventory.ValidName(v) {
			return badUsage(c, "%q is not a valid name ([a-z0-9][a-z0-9._-]*)", v)
		}
	}
	return withClient(c, func(cl *starter.Client) error {
		runs := map[string]starter.Run{}
		failed := forEach(c, nodes, func(n string) (string, error) {
			run, err := op.start(cl, n)
			runs[n] = run
			return fmt.Sprintf("started %s (run %s)", run.WorkflowID, run.RunID), err
		})
		if c.Bool("wait") {
			var started []string
			for _, n := range nodes {
				if runs[n].RunID != "" {
					started = append(started, n)
				}
			}
			failed += forEach(c, started, func(n string) (string, error) { return op.wait(cl, runs[n]) })
		}
		return exitIfFailed(failed, len(nodes))
	})
}

// forEach runs fn on every item and prints "item: line", or "item: error"
// to the error stream; it returns how many failed.
func forEach(c *cli.Context, items []string, fn func(string) (string, error)) (failed int) {
	for _, it := range items {
		line, err := fn(it)
		if err != nil {
			failed++
			fmt.Fprintf(c.App.ErrWriter, "%s: %v\n", it, err)
			continue
		}
		fmt.Fprintf(c.App.Writer, "%s: %s\n", it, line)
	}
	return failed
}

// exitIfFailed is exit status 1 saying how many of total nodes failed, or
// nil when none did.
func exitIfFailed(failed, total int) error {
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("%d of %d nodes failed", failed, total), 1)
	}
	return nil
}

// withClient dials Temporal, runs fn and closes the client.
func withClient(c *cli.Context, fn func(*starter.Client) error) error {
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(cl)
}

// userFlag is the requesting user of a node operation: the worker checks in
// the ownership directory that this DN owns each node or is a member
// (NotOwner otherwise). It defaults to the DN the ownership commands bind
// as; empty means no check.
func userFlag() cli.Flag {
	return &cli.StringFlag{Name: "user", EnvVars: []string{"RACKFLOW_LDAP_BIND_DN"},
		Usage: "your DN: the worker checks in the directory that you own each node or are a member (empty: no check)"}
}
