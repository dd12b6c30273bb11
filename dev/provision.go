package dev

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

// Summary is the outcome of provisioning a set of nodes.
type Summary struct {
	RolloutID          string
	Total, Provisioned int
	Failed             []workflows.NodeFailure
	Elapsed            time.Duration
}

// String is the one summary line `rackflow dev` prints.
func (s Summary) String() string {
	return fmt.Sprintf("provisioned %d/%d nodes in %.1fs", s.Provisioned, s.Total, s.Elapsed.Seconds())
}

// pollEvery is how often the rollout's events are read while it runs;
// progressEvery how often a progress line is printed.
const (
	pollEvery     = 500 * time.Millisecond
	progressEvery = 5 * time.Second
)

// ProvisionAll rolls image@version out to every rack of the inventory (one
// Rollout, a RackRollout per rack, a Provision per node) and follows it,
// printing a line per node as it ends and a progress line every few
// seconds to out, until the rollout ends.
func (e *Env) ProvisionAll(ctx context.Context, image, version string, out io.Writer) (Summary, error) {
	begin := time.Now()
	in := workflows.RolloutInput{
		ID:             starter.NewRolloutID(begin),
		Selector:       workflows.Selector{Racks: e.Inventory.RackNames()},
		Image:          image,
		Version:        version,
		CheckInTimeout: e.opts.CheckInTimeout,
	}
	if _, err := e.Client.StartRollout(ctx, in); err != nil {
		return Summary{}, err
	}
	fmt.Fprintf(out, "rollout   %s (%s)\n", in.ID, workflows.RolloutWorkflowID(in.ID))
	type outcome struct {
		res workflows.RolloutResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := e.Client.WaitRollout(ctx, in.ID)
		done <- outcome{res, err}
	}()
	seq := 0
	printEvents := func() {
		evs, err := e.Client.RolloutEvents(ctx, in.ID, seq)
		if err != nil {
			return // the rollout may be between runs; the next poll catches up
		}
		for _, ev := range evs {
			seq = ev.Seq
			if ev.OK {
				fmt.Fprintf(out, "%-10s provisioned  %s@%s  %.1fs\n", ev.Node, image, version, ev.At.Sub(begin).Seconds())
			} else {
				fmt.Fprintf(out, "%-10s FAILED       %s: %s\n", ev.Node, ev.Step, ev.Error)
			}
		}
	}
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	lastProgress := time.Now()
	for {
		select {
		case o := <-done:
			if o.err != nil {
				return Summary{}, o.err
			}
			printEvents()
			return Summary{
				RolloutID: in.ID, Total: o.res.Total, Provisioned: len(o.res.Provisioned),
				Failed: o.res.Failures, Elapsed: time.Since(begin),
			}, nil
		case <-poll.C:
			printEvents()
			if time.Since(lastProgress) < progressEvery {
				continue
			}
			lastProgress = time.Now()
			if p, err := e.Client.RolloutProgress(ctx, in.ID); err == nil {
				fmt.Fprintf(out, "[%5.1fs] %d/%d provisioned, %d failed, %d running\n",
					time.Since(begin).Seconds(), p.Provisioned, p.Total, p.Failed, p.Running)
			}
		}
	}
}
