package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DefaultWindow is a rack's sliding window when neither the rollout nor
// the rack's in-flight limit sets one.
const DefaultWindow = 8

// rackRolloutMaxEvents is the history length past which a RackRollout
// stops starting nodes, lets the running ones finish and continues as new
// (far below the 10,240-event warning).
const rackRolloutMaxEvents = 4000

// reportStartsVersion gates the progress report after nodes start.
const reportStartsVersion = "report-starts"

// endSeedingVersion gates the EndSeeding step at the end of a rack's share.
const endSeedingVersion = "end-seeding-by-run"

// RackRolloutInput is one rack's share of a rollout. Progress, Provisioned
// and Seeding carry the finished nodes across continue-as-new.
type RackRolloutInput struct {
	RolloutID      string
	Rack           string
	Nodes          []string // not yet started, in slot order
	Image, Version string
	Window         int
	MaxFailures    FailureBudget
	CheckInTimeout time.Duration
	ReplaceRoots   bool
	Reinstall      bool         `json:",omitempty"` // a Reinstall child per node instead of a Provision (RolloutInput.Reinstall)
	User           string       // requesting user's DN, for each Provision (RolloutInput.User)
	Progress       RackProgress // counts so far (continue-as-new)
	Provisioned    []string
	// Seeding lists the .torrents of the provisioned nodes' exports (swarm
	// transport) whose seeding ends with the share (continue-as-new).
	Seeding []Torrent `json:",omitempty"`
}

// RackRolloutResult is what a rack's share ended with.
type RackRolloutResult struct {
	Progress    RackProgress
	Provisioned []string
	Skipped     []string // never started: budget spent or cancelled
}

// RackRollout provisions one rack's nodes for a rollout (ID
// "rollout/<id>/<rack>"): a Provision child per node (ID "node/<name>", so
// a node busy with another operation is reported, never double-booked),
// at most Window unfinished at once; a failed node is excluded and the rest
// go on (Kadeploy) until the rack's failure budget is spent. It obeys
// pause, resume, stop, cancel and add-nodes, reports its progress to the
// parent rollout after every node, and continues as new, after letting
// running nodes finish, before its history grows long. The provisioned
// nodes keep seeding the image (swarm transport) while the share runs;
// when it ends (all nodes done, stopped or cancelled; not at
// continue-as-new) EndSeeding on the rack queue withdraws their exports'
// .torrents, which tells their agents to stop.
func RackRollout(ctx workflow.Context, in RackRolloutInput) (RackRolloutResult, error) {
	r := &rackRollout{in: in, p: in.Progress, provisioned: in.Provisioned, seeding: in.Seeding}
	r.p.Rack = in.Rack
	if r.p.Total == 0 {
		r.p.Total = len(in.Nodes)
	}
	r.p.Pending = len(in.Nodes)
	if err := workflow.SetQueryHandler(ctx, QueryRolloutProgress, func() (RackProgress, error) { return r.p, nil }); err != nil {
		return RackRolloutResult{}, err
	}
	return r.run(ctx)
}

type rackRollout struct {
	in          RackRolloutInput
	p           RackProgress
	provisioned []string
	seeding     []Torrent                      // of the provisioned nodes' exports, in the order they ended
	running     map[string]workflow.CancelFunc // node → cancel of its child
	draining    bool                           // waiting for running nodes before continue-as-new
}

func (r *rackRollout) run(ctx workflow.Context) (RackRolloutResult, error) {
	r.running = map[string]workflow.CancelFunc{}
	pause := workflow.GetSignalChannel(ctx, SignalPause)
	resume := workflow.GetSignalChannel(ctx, SignalResume)
	stop := workflow.GetSignalChannel(ctx, SignalStop)
	cancel := workflow.GetSignalChannel(ctx, SignalCancel)
	add := workflow.GetSignalChannel(ctx, SignalAddNodes)
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(pause, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); r.p.Paused = true })
	sel.AddReceive(resume, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); r.p.Paused = false })
	sel.AddReceive(stop, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); r.p.Stopped = true })
	sel.AddReceive(cancel, func(c workflow.ReceiveChannel, _ bool) {
		var req CancelRequest
		c.Receive(ctx, &req)
		r.cancel(ctx, req)
	})
	sel.AddReceive(add, func(c workflow.ReceiveChannel, _ bool) {
		var a AddNodes
		c.Receive(ctx, &a)
		r.add(a.Selector.Nodes)
	})
	window := r.window()
	for {
		started := false
		for r.canStart(window) {
			r.start(ctx, sel)
			started = true
		}
		// The rollout shows nodes running, not only ended (runs recorded
		// before reportStartsVersion did not report starts).
		if started && workflow.GetVersion(ctx, reportStartsVersion, workflow.DefaultVersion, 1) == 1 {
			r.report(ctx, nil, false)
		}
		if len(r.running) == 0 && (len(r.in.Nodes) == 0 || r.p.Stopped || r.p.Cancelled || r.draining) {
			break
		}
		r.details(ctx)
		sel.Select(ctx)
		if !r.draining && workflow.GetInfo(ctx).GetCurrentHistoryLength() > rackRolloutMaxEvents {
			r.draining = true
		}
	}
	r.details(ctx)
	if r.draining && len(r.in.Nodes) > 0 && !r.p.Stopped && !r.p.Cancelled {
		next := r.in
		next.Progress, next.Provisioned, next.Seeding = r.p, r.provisioned, r.seeding
		r.drain(ctx, pause, resume, stop, cancel, add, &next)
		return RackRolloutResult{}, workflow.NewContinueAsNewError(ctx, RackRollout, next)
	}
	r.endSeeding(ctx)
	r.report(ctx, nil, true)
	return RackRolloutResult{Progress: r.p, Provisioned: r.provisioned, Skipped: r.in.Nodes}, nil
}

// endSeeding withdraws the .torrents of the exports this share
// provisioned (EndSeeding on the rack queue), so their agents stop seeding.
// Each export has its own run's .torrent, so a node that another operation
// has exported since keeps its newer one. A failure is logged, not fatal:
// the agents stop at their SeedFor limit. Runs recorded before
// endSeedingVersion did not end the seeding.
func (r *rackRollout) endSeeding(ctx workflow.Context) {
	if len(r.seeding) == 0 || workflow.GetVersion(ctx, endSeedingVersion, workflow.DefaultVersion, 1) != 1 {
		return
	}
	o := endSeedingOpts
	o.TaskQueue = RackTaskQueue(r.in.Rack)
	o.Summary = fmt.Sprintf("end the seeding of %d nodes", len(r.seeding))
	// Disconnected: the seeding ends with a cancelled share too.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(dctx, o), ActivityEndSeeding, r.seeding).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("end seeding failed; agents stop at their seeding time limit", "rack", r.in.Rack, "error", err)
	}
}

func (r *rackRollout) window() int {
	if r.in.Window > 0 {
		return r.in.Window
	}
	return DefaultWindow
}

func (r *rackRollout) canStart(window int) bool {
	return len(r.in.Nodes) > 0 && len(r.running) < window &&
		!r.p.Paused && !r.p.Stopped && !r.p.Cancelled && !r.draining
}

// start launches the next node's Provision as a child whose result the
// selector delivers.
func (r *rackRollout) start(ctx workflow.Context, sel workflow.Selector) {
	node := r.in.Nodes[0]
	r.in.Nodes = r.in.Nodes[1:]
	r.p.Pending = len(r.in.Nodes)
	childCtx, cancel := workflow.WithCancel(ctx)
	childCtx = workflow.WithChildOptions(childCtx, workflow.ChildWorkflowOptions{
		WorkflowID:            NodeWorkflowID(node),
		TaskQueue:             TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// Abandon: a node's provisioning outlives a rollout run that continues as new.
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WaitForCancellation:   true,
		StaticSummary:         fmt.Sprintf("%s %s → %s@%s (rollout %s)", r.operation(), node, r.in.Image, r.in.Version, r.in.RolloutID),
		Memo:                  map[string]any{"image": r.in.Image, "version": r.in.Version},
		TypedSearchAttributes: temporal.NewSearchAttributes(AttrNode.ValueSet(node), AttrImage.ValueSet(r.in.Image), AttrRack.ValueSet(r.in.Rack), AttrRollout.ValueSet(r.in.RolloutID), AttrPhase.ValueSet(string(PhaseStarting))),
	})
	r.running[node] = cancel
	r.p.Running = len(r.running)
	var f workflow.ChildWorkflowFuture
	if r.in.Reinstall {
		f = workflow.ExecuteChildWorkflow(childCtx, Reinstall, ReinstallInput{
			Node: node, Image: r.in.Image, Version: r.in.Version, CheckInTimeout: r.in.CheckInTimeout, User: r.in.User,
		})
	} else {
		f = workflow.ExecuteChildWorkflow(childCtx, Provision, ProvisionInput{
			Node: node, Image: r.in.Image, Version: r.in.Version, CheckInTimeout: r.in.CheckInTimeout, ReplaceRoot: r.in.ReplaceRoots,
			User: r.in.User,
		})
	}
	sel.AddFuture(f, func(f workflow.Future) {
		err := f.Get(ctx, nil)
		delete(r.running, node)
		r.p.Running = len(r.running)
		ev := &NodeEvent{Node: node, Rack: r.in.Rack, OK: err == nil, At: workflow.Now(ctx)}
		switch {
		case err == nil:
			r.p.Provisioned++
			r.provisioned = append(r.provisioned, node)
			// A Reinstall's result embeds its ProvisionResult. One that
			// does not decode (none should) only means no seeding to end.
			var res ProvisionResult
			if f.Get(ctx, &res) == nil && res.Torrent.Run != "" {
				r.seeding = append(r.seeding, res.Torrent)
			}
		case isAlreadyStarted(err):
			ev.Step, ev.Error = "busy", "node is busy with another operation"
		case temporal.IsCanceledError(err):
			ev.Step, ev.Error = "cancelled", "cancelled with the rollout; its steps were undone"
		default:
			ev.Step, ev.Error = failedStep(err), firstLine(rootMessage(err))
		}
		if !ev.OK {
			r.fail(node, ev.Step, ev.Error)
		}
		if r.in.MaxFailures.Exceeded(r.p.Failed, r.p.Total) && !r.p.Stopped {
			workflow.GetLogger(ctx).Warn("rack failure budget spent: starting no new nodes", "rack", r.in.Rack, "failed", r.p.Failed, "budget", r.in.MaxFailures.String())
			r.p.Stopped = true
		}
		r.report(ctx, ev, false)
	})
}

// operation names what the rack runs on each node.
func (r *rackRollout) operation() string {
	if r.in.Reinstall {
		return "reinstall"
	}
	return "provision"
}

// reinstallWord prefixes a rollout's summary when it reinstalls.
func reinstallWord(reinstall bool) string {
	if reinstall {
		return "reinstall "
	}
	return ""
}

func (r *rackRollout) fail(node, step, msg string) {
	r.p.Failed++
	r.p.Failures = append(r.p.Failures, NodeFailure{Node: node, Rack: r.in.Rack, Step: step, Error: msg})
}

func (r *rackRollout) cancel(ctx workflow.Context, req CancelRequest) {
	r.p.Cancelled = true
	if !req.Undo {
		return
	}
	nodes := make([]string, 0, len(r.running))
	for n := range r.running {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes) // deterministic order
	for _, n := range nodes {
		r.running[n]()
	}
}

// add queues nodes not already in this rack's rollout.
func (r *rackRollout) add(nodes []string) {
	known := map[string]bool{}
	for _, n := range r.in.Nodes {
		known[n] = true
	}
	for n := range r.running {
		known[n] = true
	}
	for _, n := range r.provisioned {
		known[n] = true
	}
	for _, f := range r.p.Failures {
		known[f.Node] = true
	}
	for _, n := range nodes {
		if !known[n] {
			r.in.Nodes = append(r.in.Nodes, n)
			r.p.Total++
			known[n] = true
		}
	}
	r.p.Pending = len(r.in.Nodes)
}

// drain moves signals that arrived but were not handled into the next run.
func (r *rackRollout) drain(ctx workflow.Context, pause, resume, stop, cancel, add workflow.ReceiveChannel, next *RackRolloutInput) {
	for pause.ReceiveAsync(nil) {
		next.Progress.Paused = true
	}
	for resume.ReceiveAsync(nil) {
		next.Progress.Paused = false
	}
	for stop.ReceiveAsync(nil) {
		next.Progress.Stopped = true
	}
	var req CancelRequest
	for cancel.ReceiveAsync(&req) {
		next.Progress.Cancelled = true
	}
	var a AddNodes
	for add.ReceiveAsync(&a) {
		r.add(a.Selector.Nodes)
	}
	next.Nodes = r.in.Nodes
	next.Progress.Total, next.Progress.Pending = r.p.Total, len(r.in.Nodes)
}

// report sends the rack's progress and the node that just ended to the
// parent rollout, if any.
func (r *rackRollout) report(ctx workflow.Context, ev *NodeEvent, done bool) {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil {
		return
	}
	err := workflow.SignalExternalWorkflow(ctx, parent.ID, "", SignalRackNode, RackReport{Progress: r.p, Node: ev, Done: done}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("report to rollout", "rollout", parent.ID, "error", err)
	}
}

func (r *rackRollout) details(ctx workflow.Context) {
	state := "running"
	switch {
	case r.p.Cancelled:
		state = "cancelling"
	case r.p.Stopped:
		state = "stopped (failure budget spent)"
	case r.p.Paused:
		state = "paused"
	case r.draining:
		state = "draining before continue-as-new"
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**rack %s** → %s@%s — %s\n\n| total | pending | running | provisioned | failed |\n|---|---|---|---|---|\n| %d | %d | %d | %d | %d |\n",
		r.in.Rack, r.in.Image, r.in.Version, state, r.p.Total, r.p.Pending, r.p.Running, r.p.Provisioned, r.p.Failed))
}

func isAlreadyStarted(err error) bool {
	var started *temporal.ChildWorkflowExecutionAlreadyStartedError
	return errors.As(err, &started)
}

// failedStep is the error type of a Provision failure (CheckInTimeout,
// BMCAuth, …) or "error" when it carries none.
func failedStep(err error) string {
	var app *temporal.ApplicationError
	for e := err; errors.As(e, &app); e = app.Unwrap() {
		if t := app.Type(); t != "" && t != "wrapError" && !strings.HasPrefix(t, "*") {
			return t
		}
	}
	return "error"
}

// rootMessage is the innermost error's message.
func rootMessage(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}
