package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"
)

// permitsVersion gates the rack permits in Provision (histories recorded
// before them replay without).
const permitsVersion = "rack-permits"

// permits is a Provision's side of the rack permit protocol.
type permits struct {
	rack   string
	node   string
	limits RackLimits
	grants workflow.ReceiveChannel
	seq    int
	held   []string // request IDs granted and not yet released
}

func newPermits(ctx workflow.Context, n NodeInfo) *permits {
	return &permits{rack: n.Rack, node: n.Name, limits: n.Limits, grants: workflow.GetSignalChannel(ctx, SignalPermit)}
}

// limited reports whether the rack limits kind; unlimited kinds need no
// permit.
func (p *permits) limited(kind PermitKind) bool {
	return p.limits.max(kind) > 0 || (kind == PermitPowerOn && p.limits.PowerOnInterval > 0)
}

// acquire requests a permit of kind from the rack's limiter and waits for
// the grant.
func (p *permits) acquire(ctx workflow.Context, kind PermitKind) (string, error) {
	p.seq++
	info := workflow.GetInfo(ctx)
	req := PermitRequest{
		ID: fmt.Sprintf("%s-%d", kind, p.seq), Kind: kind, Node: p.node, Limits: p.limits,
		HolderID: info.WorkflowExecution.ID, HolderRun: info.WorkflowExecution.RunID, At: workflow.Now(ctx),
	}
	opts := globalOpts
	opts.TaskQueue, opts.Summary = TaskQueue, fmt.Sprintf("request a %s permit of rack %s", kind, p.rack)
	// Held from the request on: a release also withdraws a queued request.
	p.held = append(p.held, req.ID)
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ActivityRequestPermit, p.rack, req).Get(ctx, nil); err != nil {
		return "", fmt.Errorf("request %s permit: %w", kind, err)
	}
	for {
		var g PermitGrant
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(p.grants, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &g) })
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		sel.Select(ctx)
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if g.ID == req.ID {
			return req.ID, nil
		}
	}
}

// release returns a permit. A limiter that is not running has nothing to
// release, so its error is only logged.
func (p *permits) release(ctx workflow.Context, id string) {
	info := workflow.GetInfo(ctx)
	rel := PermitRelease{ID: id, HolderID: info.WorkflowExecution.ID, HolderRun: info.WorkflowExecution.RunID}
	if err := workflow.SignalExternalWorkflow(ctx, RackLimiterWorkflowID(p.rack), "", SignalRelease, rel).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("release permit", "rack", p.rack, "permit", id, "error", err)
	}
	for i, h := range p.held {
		if h == id {
			p.held = append(p.held[:i], p.held[i+1:]...)
			break
		}
	}
}

// releaseAll returns every permit still held or requested, and takes the
// lease renewals that arrived (they need no answer) so none is left
// unhandled when the run ends.
func (p *permits) releaseAll(ctx workflow.Context) {
	for len(p.held) > 0 {
		p.release(ctx, p.held[len(p.held)-1])
	}
	leases := workflow.GetSignalChannel(ctx, SignalLease)
	for leases.ReceiveAsync(nil) {
	}
}
