package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DefaultDrainTimeout is how long Reinstall waits for the drained signal
// when ReinstallInput.DrainTimeout is not set.
const DefaultDrainTimeout = 30 * time.Minute

// ReinstallInput asks for Node to be wiped and provisioned again with Image
// at Version.
type ReinstallInput struct {
	Node    string
	Image   string
	Version string
	// DrainURL is the drain webhook: Reinstall POSTs a DrainRequest to it
	// and waits for the drained signal before it destroys anything. "" →
	// the rack's from the inventory (NodeInfo.DrainURL, racks[].drain_url);
	// neither → no drain step.
	DrainURL string
	// DrainTimeout bounds the wait for the drained signal (default 30 min);
	// on expiry the reinstall fails with DrainTimeout and nothing is touched.
	DrainTimeout time.Duration
	// CheckInTimeout and BootAttempts are Provision's (same defaults).
	CheckInTimeout time.Duration
	BootAttempts   int
	// User is Provision's: the requesting user's DN, checked (owner or
	// member) before the drain or anything else.
	User string
}

func (in ReinstallInput) withDefaults() ReinstallInput {
	if in.DrainTimeout <= 0 {
		in.DrainTimeout = DefaultDrainTimeout
	}
	return in
}

// DrainTimeoutOrDefault is the drain timeout Reinstall will use.
func (in ReinstallInput) DrainTimeoutOrDefault() time.Duration {
	return in.withDefaults().DrainTimeout
}

// ReinstallResult is what the reinstalled node runs.
type ReinstallResult struct {
	ProvisionResult
	Drained bool // the drain step ran and was acknowledged
}

// DrainRequest is the drain activity's input: it POSTs {"node",
// "workflow_id", "run_id", "signal"} as JSON to URL, and the webhook's
// system answers by sending Signal to that workflow run once the node is
// drained.
type DrainRequest struct {
	URL                     string
	Node, WorkflowID, RunID string
	Signal                  string
}

// Reinstall wipes a node and provisions it again (workflow ID "node/<name>",
// the lock it shares with Provision and Release), Purdue's reinstall
// instead of repair: look it up → optionally drain it (POST to DrainURL, then
// a workflow timer of DrainTimeout for the drained signal) → destroy its root
// (the node's data is gone, by design) → Provision's steps, in this run.
// A drain that fails or times out leaves the node untouched; a provisioning
// step that fails is undone as in Provision.
func Reinstall(ctx workflow.Context, in ReinstallInput) (ReinstallResult, error) {
	in = in.withDefaults()
	p := newProvision(ProvisionInput{
		Node: in.Node, Image: in.Image, Version: in.Version,
		CheckInTimeout: in.CheckInTimeout, BootAttempts: in.BootAttempts, User: in.User,
	}, fmt.Sprintf("**%s** reinstall → %s@%s", in.Node, in.Image, in.Version))
	if err := p.progressQuery(ctx); err != nil {
		return ReinstallResult{}, err
	}
	res, err := reinstall(ctx, p, in)
	p.end(ctx, err)
	return res, err
}

func reinstall(ctx workflow.Context, p *provision, in ReinstallInput) (ReinstallResult, error) {
	var res ReinstallResult
	p.setPhase(ctx, PhaseStarting, "looking up "+in.Node)
	if err := p.lookupAndCheck(ctx, in.Node, AttrImage.ValueSet(in.Image)); err != nil {
		return res, err
	}
	if in.DrainURL == "" {
		in.DrainURL = p.node.DrainURL // the rack's webhook from the inventory
	}
	if in.DrainURL != "" {
		if err := p.drain(ctx, in); err != nil {
			return res, err
		}
		res.Drained = true
	}
	if err := p.step(ctx, PhaseDestroying, "destroying the old root", undoOpts,
		"destroy the old root of "+p.node.Name, ActivityDestroyRoot, p.node.Name, nil); err != nil {
		return res, fmt.Errorf("destroy root: %w", err)
	}
	var err error
	res.ProvisionResult, err = p.provisionNode(ctx)
	return res, err
}

// drain asks the drain webhook to move the node's users off it and waits
// for the drained signal (it may arrive before the webhook call returns).
func (p *provision) drain(ctx workflow.Context, in ReinstallInput) error {
	drained := workflow.GetSignalChannel(ctx, SignalDrained)
	info := workflow.GetInfo(ctx).WorkflowExecution
	p.setPhase(ctx, PhaseDraining, "asking for a drain")
	req := DrainRequest{URL: in.DrainURL, Node: p.node.Name, WorkflowID: info.ID, RunID: info.RunID, Signal: SignalDrained}
	if err := workflow.ExecuteActivity(p.opts(ctx, globalOpts, "ask for a drain of "+p.node.Name),
		ActivityRequestDrain, req).Get(ctx, nil); err != nil {
		return fmt.Errorf("drain request: %w", err)
	}

	p.setPhase(ctx, PhaseDraining, fmt.Sprintf("awaiting the drained signal (≤ %s)", in.DrainTimeout))
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timer := workflow.NewTimerWithOptions(timerCtx, in.DrainTimeout, workflow.TimerOptions{Summary: "drain of " + p.node.Name})
	ok := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(drained, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); ok = true })
	sel.AddFuture(timer, func(workflow.Future) {})
	sel.Select(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	if !ok {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("node %s was not drained within %s", p.node.Name, in.DrainTimeout), ErrDrainTimeout, nil)
	}
	return nil
}
