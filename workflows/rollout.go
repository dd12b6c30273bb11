package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Rollout provisions many nodes, rack by rack in parallel (workflow ID
// "rollout/<id>"): it resolves the selector, starts one RackRollout child
// per rack and aggregates their progress. Failed nodes are excluded and the
// rest continue (Kadeploy); past MaxFailures overall the racks start no new
// nodes, let running ones finish, and the rollout ends failed. Any system
// may signal pause, resume, cancel (CancelRequest) and add-nodes
// (AddNodes), and query "progress" (RolloutProgress). The result lists
// every node that was not provisioned with its step and error.
func Rollout(ctx workflow.Context, in RolloutInput) (RolloutResult, error) {
	ro := &rollout{in: in, racks: map[string]*rackChild{}}
	ro.p = RolloutProgress{ID: in.ID, Image: in.Image, Version: in.Version, State: RolloutRunning, Started: workflow.Now(ctx)}
	if err := workflow.SetQueryHandler(ctx, QueryRolloutProgress, func() (RolloutProgress, error) { return ro.progress(ctx), nil }); err != nil {
		return RolloutResult{}, err
	}
	if err := workflow.SetQueryHandler(ctx, QueryRolloutEvents, func(since int) ([]NodeEvent, error) {
		if since < 0 || since > len(ro.events) {
			since = len(ro.events)
		}
		return ro.events[since:], nil
	}); err != nil {
		return RolloutResult{}, err
	}
	return ro.run(ctx)
}

type rollout struct {
	in    RolloutInput
	p     RolloutProgress
	order []string // racks in the order they joined
	racks map[string]*rackChild
	// done counts racks whose child has returned.
	done      int
	cancelled bool
	stopped   bool
	events    []NodeEvent // every node's end, in arrival order
}

type rackChild struct {
	progress RackProgress
	result   *RackRolloutResult
	err      error
}

func (ro *rollout) run(ctx workflow.Context) (RolloutResult, error) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, AttrRollout.ValueSet(ro.in.ID), AttrImage.ValueSet(ro.in.Image)); err != nil {
		return RolloutResult{}, err
	}
	groups, err := ro.resolve(ctx, ro.in.Selector)
	if err != nil {
		return RolloutResult{}, err
	}
	sel := workflow.NewSelector(ctx)
	for _, g := range groups {
		ro.startRack(ctx, sel, g)
	}
	reports := workflow.GetSignalChannel(ctx, SignalRackNode)
	sel.AddReceive(reports, func(c workflow.ReceiveChannel, _ bool) {
		var rep RackReport
		c.Receive(ctx, &rep)
		if rc, ok := ro.racks[rep.Progress.Rack]; ok {
			rc.progress = rep.Progress
		}
		if rep.Node != nil {
			ev := *rep.Node
			ev.Seq = len(ro.events) + 1
			ro.events = append(ro.events, ev)
		}
		ro.checkBudget(ctx)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalPause), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		ro.p.State = RolloutPaused
		ro.toRacks(ctx, SignalPause, nil)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalResume), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		if ro.p.State == RolloutPaused {
			ro.p.State = RolloutRunning
		}
		ro.toRacks(ctx, SignalResume, nil)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalCancel), func(c workflow.ReceiveChannel, _ bool) {
		var req CancelRequest
		c.Receive(ctx, &req)
		ro.cancelled = true
		ro.p.State = RolloutCancelling
		ro.toRacks(ctx, SignalCancel, req)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalAddNodes), func(c workflow.ReceiveChannel, _ bool) {
		var a AddNodes
		c.Receive(ctx, &a)
		ro.addNodes(ctx, sel, a.Selector)
	})
	for ro.done < len(ro.racks) {
		ro.details(ctx)
		sel.Select(ctx)
	}
	res := ro.result(ctx)
	if res.State != RolloutCompleted {
		// The run fails, so the Web UI shows it; the report travels as the
		// error's details (starter.WaitRollout returns it).
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("rollout %s %s: %d of %d nodes provisioned, %d failed, %d skipped", ro.in.ID, res.State, len(res.Provisioned), res.Total, len(res.Failures), len(res.Skipped)),
			ErrRolloutNotCompleted, nil, res)
	}
	return res, nil
}

// resolve turns a selector into nodes per rack through the inventory.
func (ro *rollout) resolve(ctx workflow.Context, s Selector) ([]RackNodes, error) {
	opts := globalOpts
	opts.TaskQueue, opts.Summary = TaskQueue, "resolve "+describeSelector(s)
	var groups []RackNodes
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ActivityResolveNodes, s).Get(ctx, &groups)
	if err != nil {
		return nil, fmt.Errorf("resolve nodes: %w", err)
	}
	return groups, nil
}

func (ro *rollout) startRack(ctx workflow.Context, sel workflow.Selector, g RackNodes) {
	window := ro.in.Window
	if window == 0 {
		window = g.Limits.InFlight
	}
	childCtx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            RackRolloutWorkflowID(ro.in.ID, g.Rack),
		TaskQueue:             TaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		StaticSummary:         fmt.Sprintf("rack %s → %s%s@%s, %d nodes (rollout %s)", g.Rack, reinstallWord(ro.in.Reinstall), ro.in.Image, ro.in.Version, len(g.Nodes), ro.in.ID),
		TypedSearchAttributes: temporal.NewSearchAttributes(AttrRack.ValueSet(g.Rack), AttrRollout.ValueSet(ro.in.ID), AttrImage.ValueSet(ro.in.Image)),
	})
	rc := &rackChild{progress: RackProgress{Rack: g.Rack, Total: len(g.Nodes), Pending: len(g.Nodes)}}
	ro.racks[g.Rack] = rc
	ro.order = append(ro.order, g.Rack)
	f := workflow.ExecuteChildWorkflow(childCtx, RackRollout, RackRolloutInput{
		RolloutID: ro.in.ID, Rack: g.Rack, Nodes: g.Nodes, Image: ro.in.Image, Version: ro.in.Version,
		Window: window, MaxFailures: ro.in.RackMaxFailures, CheckInTimeout: ro.in.CheckInTimeout,
		ReplaceRoots: ro.in.ReplaceRoots, Reinstall: ro.in.Reinstall, User: ro.in.User,
	})
	sel.AddFuture(f, func(f workflow.Future) {
		var res RackRolloutResult
		if err := f.Get(ctx, &res); err != nil {
			rc.err = err
		} else {
			rc.result, rc.progress = &res, res.Progress
		}
		ro.done++
		ro.checkBudget(ctx)
	})
}

// addNodes resolves the new nodes and hands them to their racks' running
// children, starting a child for a rack not yet in the rollout.
func (ro *rollout) addNodes(ctx workflow.Context, sel workflow.Selector, s Selector) {
	if ro.cancelled || ro.stopped {
		workflow.GetLogger(ctx).Warn("add-nodes ignored: the rollout is stopping", "rollout", ro.in.ID)
		return
	}
	groups, err := ro.resolve(ctx, s)
	if err != nil {
		workflow.GetLogger(ctx).Error("add-nodes ignored", "rollout", ro.in.ID, "error", err)
		return
	}
	for _, g := range groups {
		rc, ok := ro.racks[g.Rack]
		if !ok || rc.result != nil || rc.err != nil {
			if !ok {
				ro.startRack(ctx, sel, g)
			} else {
				workflow.GetLogger(ctx).Warn("add-nodes: rack already finished", "rack", g.Rack)
			}
			continue
		}
		err := workflow.SignalExternalWorkflow(ctx, RackRolloutWorkflowID(ro.in.ID, g.Rack), "", SignalAddNodes,
			AddNodes{Selector: Selector{Nodes: g.Nodes}}).Get(ctx, nil)
		if err != nil {
			workflow.GetLogger(ctx).Error("add-nodes", "rack", g.Rack, "error", err)
		}
	}
}

// checkBudget stops every rack once the overall failure budget is spent.
func (ro *rollout) checkBudget(ctx workflow.Context) {
	p := ro.progress(ctx)
	if !ro.stopped && ro.in.MaxFailures.Exceeded(p.Failed, p.Total) {
		workflow.GetLogger(ctx).Warn("failure budget spent: starting no new nodes", "rollout", ro.in.ID, "failed", p.Failed, "budget", ro.in.MaxFailures.String())
		ro.stopped = true
		ro.toRacks(ctx, SignalStop, nil)
	}
}

// toRacks signals every rack child that is still running.
func (ro *rollout) toRacks(ctx workflow.Context, name string, arg any) {
	var fs []workflow.Future
	for _, rack := range ro.order {
		if rc := ro.racks[rack]; rc.result == nil && rc.err == nil {
			fs = append(fs, workflow.SignalExternalWorkflow(ctx, RackRolloutWorkflowID(ro.in.ID, rack), "", name, arg))
		}
	}
	for _, f := range fs {
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("signal rack rollout", "signal", name, "error", err)
		}
	}
}

func (ro *rollout) progress(ctx workflow.Context) RolloutProgress {
	p := ro.p
	p.Racks, p.Total, p.Provisioned, p.Failed, p.Running = nil, 0, 0, 0, 0
	for _, rack := range ro.order {
		rp := ro.racks[rack].progress
		p.Racks = append(p.Racks, rp)
		p.Total += rp.Total
		p.Provisioned += rp.Provisioned
		p.Failed += rp.Failed
		p.Running += rp.Running
	}
	if finished := p.Provisioned + p.Failed; finished > 0 && finished < p.Total {
		elapsed := workflow.Now(ctx).Sub(p.Started)
		p.ETA = workflow.Now(ctx).Add(elapsed * time.Duration(p.Total-finished) / time.Duration(finished))
	}
	return p
}

func (ro *rollout) result(ctx workflow.Context) RolloutResult {
	p := ro.progress(ctx)
	res := RolloutResult{ID: ro.in.ID, Image: ro.in.Image, Version: ro.in.Version, Total: p.Total, Started: p.Started, Ended: workflow.Now(ctx)}
	for _, rack := range ro.order {
		rc := ro.racks[rack]
		if rc.err != nil {
			res.Failures = append(res.Failures, NodeFailure{Rack: rack, Step: "rack", Error: firstLine(rootMessage(rc.err))})
			continue
		}
		res.Provisioned = append(res.Provisioned, rc.result.Provisioned...)
		res.Skipped = append(res.Skipped, rc.result.Skipped...)
		res.Failures = append(res.Failures, rc.progress.Failures...)
	}
	slices.Sort(res.Provisioned)
	slices.Sort(res.Skipped)
	switch {
	case ro.cancelled:
		res.State = RolloutCancelled
	case ro.stopped || (res.Total > 0 && len(res.Provisioned) == 0) ||
		slices.ContainsFunc(p.Racks, func(r RackProgress) bool { return r.Stopped }) ||
		slices.ContainsFunc(res.Failures, func(f NodeFailure) bool { return f.Step == "rack" }):
		res.State = RolloutFailed
	default:
		res.State = RolloutCompleted
	}
	ro.p.State = res.State
	ro.details(ctx)
	return res
}

func (ro *rollout) details(ctx workflow.Context) {
	p := ro.progress(ctx)
	var b strings.Builder
	fmt.Fprintf(&b, "**rollout %s** → %s@%s — %s, %d/%d provisioned, %d failed\n\n", ro.in.ID, ro.in.Image, ro.in.Version, p.State, p.Provisioned, p.Total, p.Failed)
	b.WriteString("| rack | total | pending | running | provisioned | failed |\n|---|---|---|---|---|---|\n")
	for _, r := range p.Racks {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", r.Rack, r.Total, r.Pending, r.Running, r.Provisioned, r.Failed)
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

// describeSelector renders a selector for summaries: "r01,r02 + 3 nodes".
func describeSelector(s Selector) string {
	var parts []string
	if len(s.Racks) > 0 {
		parts = append(parts, strings.Join(s.Racks, ","))
	}
	if len(s.Nodes) > 0 {
		parts = append(parts, fmt.Sprintf("%d nodes", len(s.Nodes)))
	}
	return strings.Join(parts, " + ")
}
