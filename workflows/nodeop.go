package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// nodeOp is what every single-node operation (Provision, Reinstall,
// Release; workflow ID "node/<name>") shares: the node as the inventory
// knows it, the progress the "progress" query returns and the Web UI shows,
// and the rack permits it holds.
type nodeOp struct {
	title    string // first line of the Web UI details, e.g. "**r01n01** → demo@v2"
	boots    int    // boots the operation may take (0: it boots nothing), for the details
	node     NodeInfo
	progress Progress
	permits  *permits // nil when the operation takes no rack permits
	// user is the requesting user's DN (the input's User): when set, the
	// operation checks it may operate the node before touching anything,
	// and it is the RackflowOwner search attribute. Empty: the caller is
	// trusted and nothing is checked (runs recorded before ownership).
	user string
}

// lookup looks the node up in the inventory and upserts its node and rack
// search attributes, with extra ones in the same upsert.
func (p *nodeOp) lookup(ctx workflow.Context, name string, extra ...temporal.SearchAttributeUpdate) error {
	if err := workflow.ExecuteActivity(p.opts(ctx, globalOpts, "look up "+name+" in the inventory"),
		ActivityLookupNode, name).Get(ctx, &p.node); err != nil {
		return fmt.Errorf("look up node: %w", err)
	}
	p.progress.Rack = p.node.Rack
	if p.user != "" {
		extra = append(extra, AttrOwner.ValueSet(p.user))
	}
	return workflow.UpsertTypedSearchAttributes(ctx,
		append([]temporal.SearchAttributeUpdate{AttrNode.ValueSet(p.node.Name), AttrRack.ValueSet(p.node.Rack)}, extra...)...)
}

// checkOwner asks the ownership directory whether the requesting user owns
// the node looked up or is a member of it; a refusal is the activity's
// non-retryable NotOwner error (OwnershipNotConfigured when the worker has
// no directory). Without a user it does nothing and adds no command, so
// runs that name no user replay as before.
func (p *nodeOp) checkOwner(ctx workflow.Context) error {
	if p.user == "" {
		return nil
	}
	p.setPhase(ctx, PhaseStarting, "checking that "+p.user+" may operate "+p.node.Name)
	if err := workflow.ExecuteActivity(p.opts(ctx, ownerOpts, "check that "+p.user+" owns "+p.node.Name+" or is a member"),
		ActivityCheckOwner, CheckOwnerInput{Node: p.node.Name, User: p.user}).Get(ctx, nil); err != nil {
		return fmt.Errorf("ownership: %w", err)
	}
	return nil
}

// lookupAndCheck is lookup then checkOwner: the first steps of every node
// operation.
func (p *nodeOp) lookupAndCheck(ctx workflow.Context, name string, extra ...temporal.SearchAttributeUpdate) error {
	if err := p.lookup(ctx, name, extra...); err != nil {
		return err
	}
	return p.checkOwner(ctx)
}

// step runs one activity as a phase of the operation: the phase and step
// text go to the search attribute and the Web UI, summary names the activity
// in the event history. Rack activities run on the node's rack queue.
func (p *nodeOp) step(ctx workflow.Context, phase Phase, step string, o workflow.ActivityOptions, summary, activity string, input any, result any) error {
	p.setPhase(ctx, phase, step)
	return workflow.ExecuteActivity(p.rackOpts(ctx, o, summary), activity, input).Get(ctx, result)
}

// withPermit runs step holding a rack permit of kind when the rack limits
// it, released as soon as step ends. A nil step takes the permit for the
// rest of the run (released by releasePermits).
func (p *nodeOp) withPermit(ctx workflow.Context, kind PermitKind, step func() error) error {
	if p.permits == nil || !p.permits.limited(kind) {
		if step == nil {
			return nil
		}
		return step()
	}
	p.setPhase(ctx, PhaseWaiting, fmt.Sprintf("waiting for a %s permit of rack %s", kind, p.node.Rack))
	id, err := p.permits.acquire(ctx, kind)
	if err != nil || step == nil {
		return err
	}
	defer p.permits.release(ctx, id)
	return step()
}

// releasePermits returns every permit still held, on a context that
// survives cancellation.
func (p *nodeOp) releasePermits(ctx workflow.Context) {
	if p.permits == nil {
		return
	}
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	p.permits.releaseAll(dctx)
}

func (p *nodeOp) setPhase(ctx workflow.Context, phase Phase, step string) {
	p.progress.Phase, p.progress.Step, p.progress.Since = phase, step, workflow.Now(ctx)
	if err := workflow.UpsertTypedSearchAttributes(ctx, AttrPhase.ValueSet(string(phase))); err != nil {
		workflow.GetLogger(ctx).Error("upsert phase", "error", err)
	}
	workflow.SetCurrentDetails(ctx, p.details())
}

// details renders the progress as the Markdown the Web UI shows.
func (p *nodeOp) details() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", p.title)
	since := p.progress.Since.UTC().Format(time.RFC3339)
	if p.boots > 0 {
		fmt.Fprintf(&b, "| phase | step | boot | since |\n|---|---|---|---|\n| %s | %s | %d/%d | %s |\n",
			p.progress.Phase, p.progress.Step, p.progress.BootAttempt, p.boots, since)
	} else {
		fmt.Fprintf(&b, "| phase | step | since |\n|---|---|---|\n| %s | %s | %s |\n", p.progress.Phase, p.progress.Step, since)
	}
	if p.progress.Error != "" {
		fmt.Fprintf(&b, "\n**error:** %s\n", firstLine(p.progress.Error))
	}
	return b.String()
}

// progressQuery answers the "progress" query with p's progress.
func (p *nodeOp) progressQuery(ctx workflow.Context) error {
	return workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) { return p.progress, nil })
}
