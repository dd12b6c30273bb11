package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

// Summary is the outcome of provisioning a set of nodes.
type Summary struct {
	Total, Provisioned int
	Failed             []NodeError
	Elapsed            time.Duration
}

// NodeError is a node that was not provisioned, and why.
type NodeError struct {
	Node string
	Err  error
}

// String is the one summary line `rackflow dev` prints.
func (s Summary) String() string {
	return fmt.Sprintf("provisioned %d/%d nodes in %.1fs", s.Provisioned, s.Total, s.Elapsed.Seconds())
}

// startParallelism bounds concurrent StartWorkflow calls (requests to the
// frontend, not nodes in flight: every node's workflow runs at once).
const startParallelism = 16

// progressEvery is how often a progress line is printed while nodes run.
const progressEvery = 5 * time.Second

// ProvisionAll starts Provision for every inventory node with image@version
// and follows each to its end, printing a line per node as it finishes and
// a progress line every few seconds to out. A node already running an
// operation (e.g. resumed after a restart) is followed, not started again.
func (e *Env) ProvisionAll(ctx context.Context, image, version string, out io.Writer) Summary {
	begin := time.Now()
	nodes := e.Inventory.Nodes
	type result struct {
		node string
		res  workflows.ProvisionResult
		err  error
	}
	results := make(chan result, len(nodes))
	sem := make(chan struct{}, startParallelism)
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			in := workflows.ProvisionInput{Node: n.Name, Image: image, Version: version, CheckInTimeout: e.opts.CheckInTimeout}
			run, err := e.Client.Provision(ctx, in)
			<-sem
			if err != nil && !errors.Is(err, starter.ErrNodeBusy) {
				results <- result{node: n.Name, err: err}
				return
			}
			res, err := e.Client.WaitProvision(ctx, run)
			results <- result{node: n.Name, res: res, err: err}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	s := Summary{Total: len(nodes)}
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for done := 0; done < len(nodes); {
		select {
		case r, ok := <-results:
			if !ok {
				done = len(nodes)
				continue
			}
			done++
			if r.err != nil {
				s.Failed = append(s.Failed, NodeError{Node: r.node, Err: r.err})
				fmt.Fprintf(out, "%-10s FAILED       %v\n", r.node, r.err)
				continue
			}
			s.Provisioned++
			fmt.Fprintf(out, "%-10s provisioned  %s@%s  boot %d  %.1fs\n", r.node, r.res.Image, r.res.Version, r.res.BootAttempts, time.Since(begin).Seconds())
		case <-tick.C:
			fmt.Fprintf(out, "[%5.1fs] %d/%d provisioned, %d failed, %d in progress\n",
				time.Since(begin).Seconds(), s.Provisioned, s.Total, len(s.Failed), s.Total-s.Provisioned-len(s.Failed))
		}
	}
	s.Elapsed = time.Since(begin)
	return s
}
