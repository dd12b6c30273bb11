package starter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/rackflow/rackflow/workflows"
)

// StartCheckoutExpiry starts the checkout timer of a node
// (workflows.CheckoutExpiry, ID "checkout/<node>"): when in.Duration is
// over, the node is released as in.User. A timer already running for the
// node (an earlier checkout) is replaced: it is terminated and the new
// one starts.
func (c *Client) StartCheckoutExpiry(ctx context.Context, in workflows.CheckoutExpiryInput) (Run, error) {
	if in.Node == "" || in.User == "" || in.Duration <= 0 {
		return Run{}, fmt.Errorf("checkout expiry: want a node, a user and a positive duration (got %q, %q, %s)", in.Node, in.User, in.Duration)
	}
	id := workflows.CheckoutExpiryWorkflowID(in.Node)
	until := time.Now().Add(in.Duration).UTC().Format(time.RFC3339)
	run, err := c.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            fmt.Sprintf("checkout %s by %s until %s", in.Node, in.User, until),
		StaticDetails: fmt.Sprintf("Node **%s** is checked out by %s for %s: at %s it is released (powered off, root destroyed, owner cleared) unless released or checked out again before.",
			in.Node, in.User, in.Duration, until),
		// No node attribute: `rackflow status` lists node operations only.
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrOwner.ValueSet(in.User)),
	}, workflows.CheckoutExpiry, in)
	if err != nil {
		return Run{}, fmt.Errorf("start %s: %w", id, err)
	}
	return Run{WorkflowID: id, RunID: run.GetRunID()}, nil
}

// CancelCheckoutExpiry cancels the node's checkout timer, if one runs
// (the node was released or checked out again). It reports whether one
// did.
func (c *Client) CancelCheckoutExpiry(ctx context.Context, node string) (bool, error) {
	id := workflows.CheckoutExpiryWorkflowID(node)
	d, err := c.c.DescribeWorkflowExecution(ctx, id, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("describe %s: %w", id, err)
	}
	if d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return false, nil
	}
	err = c.c.CancelWorkflow(ctx, id, d.GetWorkflowExecutionInfo().GetExecution().GetRunId())
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cancel %s: %w", id, err)
	}
	return true, nil
}
