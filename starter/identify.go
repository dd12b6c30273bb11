package starter

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/workflows"
)

// Errors of the identify operations, returned wrapped with the scope.
var (
	// ErrIdentifyRunning: StartIdentify for a scope that is being
	// identified already.
	ErrIdentifyRunning = errors.New("an identification of this scope is already running")
	// ErrNoIdentify: no identification runs for the scope (it is
	// netboot.ErrNoIdentify, so the identify API answers 409).
	ErrNoIdentify = netboot.ErrNoIdentify
)

// StartIdentify starts workflows.Identify with ID "identify/<scope>" after
// checking the input (workflows.ValidateIdentifyInput: an invalid scope or
// plan is an error before anything is sent). A scope already being
// identified gets ErrIdentifyRunning (wrapped).
func (c *Client) StartIdentify(ctx context.Context, in workflows.IdentifyInput) (Run, error) {
	norm, err := workflows.ValidateIdentifyInput(in)
	if err != nil {
		return Run{}, fmt.Errorf("start identify: %w", err)
	}
	id := workflows.IdentifyWorkflowID(in.Scope)
	opts := client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                workflows.TaskQueue,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            IdentifySummary(norm),
		StaticDetails: fmt.Sprintf("Machines of **%s** booted in identify mode wait for a USB drive; each insertion "+
			"assigns the next position in rack order. Signals `%s` (dead position), `%s` (wrong machine), `%s`; query `%s`.",
			in.Scope, workflows.SignalIdentifySkip, workflows.SignalIdentifyUndo, workflows.SignalIdentifyFinish, workflows.QueryIdentifyStatus),
		Memo: map[string]any{"scope": in.Scope, "positions": len(norm.Plan)},
	}
	run, err := c.c.ExecuteWorkflow(ctx, opts, workflows.Identify, norm)
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			return Run{WorkflowID: id, RunID: started.RunId}, fmt.Errorf("%s: %w (workflow %s run %s)", in.Scope, ErrIdentifyRunning, id, started.RunId)
		}
		return Run{}, fmt.Errorf("start %s: %w", id, err)
	}
	return Run{WorkflowID: id, RunID: run.GetRunID()}, nil
}

// IdentifySummary is the Web UI summary of an identification of a
// validated input: "identify r01: 8 positions, slot 1 r01n01 … slot 8
// r01n08".
func IdentifySummary(in workflows.IdentifyInput) string {
	n := len(in.Plan)
	if n == 0 {
		return "identify " + in.Scope
	}
	first, last := in.Plan[0], in.Plan[n-1]
	if n == 1 {
		return fmt.Sprintf("identify %s: 1 position, slot %d %s", in.Scope, first.Slot, first.Name)
	}
	return fmt.Sprintf("identify %s: %d positions, slot %d %s … slot %d %s", in.Scope, n, first.Slot, first.Name, last.Slot, last.Name)
}

// Identify implements netboot.Identifier: the verified call becomes the
// identify update of the scope's workflow, and Identify waits for its
// result. A MAC that already has a position gets that position again (the
// validator refuses it with the assignment in its details), so an agent
// that retries after a lost answer gets the same identity. Errors wrap
// netboot.ErrNoIdentify (no identification running, or it is ending),
// netboot.ErrPlanExhausted or netboot.ErrMACRefused; a deadline wraps
// context.DeadlineExceeded.
//
// A confirmation (call.Confirm) becomes the confirm update instead; a MAC
// without a position is refused with netboot.ErrMACRefused.
//
// The update ID is left random: an ID derived from the MAC would make the
// server answer a MAC's second identification (after an undo) with its
// first, undone result.
func (c *Client) Identify(ctx context.Context, call netboot.IdentifyCall) (netboot.IdentifyAssignment, error) {
	id := workflows.IdentifyWorkflowID(call.Scope)
	update := workflows.UpdateIdentify
	if call.Confirm {
		update = workflows.UpdateIdentifyConfirm
	}
	h, err := c.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   update,
		Args:         []any{workflows.IdentifyRequest{MAC: call.MAC, From: call.From}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var a workflows.Assignment
	if err == nil {
		err = h.Get(ctx, &a)
	}
	if err != nil {
		return identifyOutcome(ctx, call, err)
	}
	return assignmentOf(call.Scope, a), nil
}

// identifyOutcome maps the error of an identify update.
func identifyOutcome(ctx context.Context, call netboot.IdentifyCall, err error) (netboot.IdentifyAssignment, error) {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		switch app.Type() {
		case workflows.ErrMACAssigned:
			var a workflows.Assignment
			if derr := app.Details(&a); derr != nil || a.MAC == "" {
				return netboot.IdentifyAssignment{}, fmt.Errorf("identify %s: %s: assignment unreadable: %v", call.Scope, app.Message(), derr)
			}
			return assignmentOf(call.Scope, a), nil
		case workflows.ErrPlanExhausted:
			return netboot.IdentifyAssignment{}, fmt.Errorf("identify %s: %w", call.Scope, netboot.ErrPlanExhausted)
		case workflows.ErrInvalidMAC, workflows.ErrNotAssigned:
			return netboot.IdentifyAssignment{}, fmt.Errorf("identify %s: %w: %s", call.Scope, netboot.ErrMACRefused, app.Message())
		case workflows.ErrIdentifyClosed:
			return netboot.IdentifyAssignment{}, fmt.Errorf("identify %s: %w: %s", call.Scope, netboot.ErrNoIdentify, app.Message())
		}
	}
	if notRunning(err) {
		return netboot.IdentifyAssignment{}, fmt.Errorf("identify %s: %w", call.Scope, netboot.ErrNoIdentify)
	}
	if ctx.Err() != nil {
		return netboot.IdentifyAssignment{}, fmt.Errorf("identify %s: %w (%v)", call.Scope, ctx.Err(), err)
	}
	return netboot.IdentifyAssignment{}, fmt.Errorf("identify %s: %w", call.Scope, err)
}

// notRunning reports whether err says the workflow does not run (never
// started, completed, past retention).
func notRunning(err error) bool {
	var notFound *serviceerror.NotFound
	return errors.As(err, &notFound) || strings.Contains(err.Error(), "workflow execution already completed")
}

func assignmentOf(scope string, a workflows.Assignment) netboot.IdentifyAssignment {
	return netboot.IdentifyAssignment{Scope: scope, Slot: a.Slot, Name: a.Name, IP: a.IP, MAC: a.MAC}
}

// IdentifySkip marks the next position of scope dead on arrival. A
// non-zero slot must be the next slot, or the workflow ignores the skip
// (a repeated command skips one position, not two); IdentifyStatus shows
// the outcome.
func (c *Client) IdentifySkip(ctx context.Context, scope string, slot int) error {
	return c.identifySignal(ctx, scope, workflows.SignalIdentifySkip, workflows.SkipRequest{Slot: slot})
}

// IdentifyUndo takes back the last action of scope (the wrong machine's
// assignment, or a skip): its position is next again. A non-zero slot
// must be the slot of that action, or the workflow ignores the undo.
func (c *Client) IdentifyUndo(ctx context.Context, scope string, slot int) error {
	return c.identifySignal(ctx, scope, workflows.SignalIdentifyUndo, workflows.UndoRequest{Slot: slot})
}

// IdentifyFinish ends the identification of scope; WaitIdentify returns
// its result.
func (c *Client) IdentifyFinish(ctx context.Context, scope string) error {
	return c.identifySignal(ctx, scope, workflows.SignalIdentifyFinish, nil)
}

func (c *Client) identifySignal(ctx context.Context, scope, name string, arg any) error {
	err := c.c.SignalWorkflow(ctx, workflows.IdentifyWorkflowID(scope), "", name, arg)
	if err != nil && notRunning(err) {
		return fmt.Errorf("identify %s: %w", scope, ErrNoIdentify)
	}
	if err != nil {
		return fmt.Errorf("identify %s: %s: %w", scope, name, err)
	}
	return nil
}

// IdentifyStatus queries the identification of scope (the latest run,
// running or not; ErrNoIdentify when there is none).
func (c *Client) IdentifyStatus(ctx context.Context, scope string) (workflows.IdentifyStatus, error) {
	v, err := c.c.QueryWorkflow(ctx, workflows.IdentifyWorkflowID(scope), "", workflows.QueryIdentifyStatus)
	if err != nil {
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return workflows.IdentifyStatus{}, fmt.Errorf("identify %s: %w", scope, ErrNoIdentify)
		}
		return workflows.IdentifyStatus{}, fmt.Errorf("identify %s: status: %w", scope, err)
	}
	var s workflows.IdentifyStatus
	return s, v.Get(&s)
}

// WaitIdentify blocks until the identification of scope ends (following
// continue-as-new) and returns its result.
func (c *Client) WaitIdentify(ctx context.Context, scope string) (workflows.IdentifyResult, error) {
	var res workflows.IdentifyResult
	err := c.c.GetWorkflow(ctx, workflows.IdentifyWorkflowID(scope), "").Get(ctx, &res)
	return res, err
}

var _ netboot.Identifier = (*Client)(nil)

// IdentifyBoot starts workflows.IdentifyBoot on node (ID "node/<name>"):
// the node's boot profile becomes the agent in identify mode for scope,
// and it is power-cycled into PXE. A node busy with another operation gets
// ErrNodeBusy (wrapped).
func (c *Client) IdentifyBoot(ctx context.Context, in workflows.IdentifyBootInput) (Run, error) {
	if err := netboot.ValidName(in.Scope); err != nil {
		return Run{}, fmt.Errorf("identify boot %s: scope: %w", in.Node, err)
	}
	return c.startNodeOp(ctx, in.Node, nodeOp{
		summary: fmt.Sprintf("identify boot %s (%s)", in.Node, in.Scope),
		details: fmt.Sprintf("Node **%s** boots the agent in identify mode: it waits for a USB drive and asks identify/%s for its name and address.", in.Node, in.Scope),
	}, workflows.IdentifyBoot, in)
}

// WaitIdentifyBoot blocks until the run ends and returns its result.
func (c *Client) WaitIdentifyBoot(ctx context.Context, r Run) (workflows.IdentifyBootResult, error) {
	var res workflows.IdentifyBootResult
	err := c.c.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &res)
	return res, err
}
