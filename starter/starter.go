// Package starter is the typed client other programs use to start, signal,
// query and follow rackflow's workflows. It is the only place that builds
// client.StartWorkflowOptions.
package starter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/workflows"
)

// Client wraps a Temporal client with rackflow's operations.
type Client struct {
	c client.Client
}

// Dial connects to the Temporal frontend at address (host:port) and namespace.
func Dial(ctx context.Context, address, namespace string, log *slog.Logger) (*Client, error) {
	c, err := client.DialContext(ctx, client.Options{
		HostPort:  address,
		Namespace: namespace,
		Logger:    sdklog.NewStructuredLogger(log),
	})
	if err != nil {
		return nil, fmt.Errorf("temporal at %s: %w", address, err)
	}
	return &Client{c: c}, nil
}

// New wraps an existing Temporal client.
func New(c client.Client) *Client { return &Client{c: c} }

// Temporal returns the underlying Temporal client.
func (c *Client) Temporal() client.Client { return c.c }

// Close closes the connection.
func (c *Client) Close() { c.c.Close() }

// ErrNodeBusy is returned when the node already runs an operation.
var ErrNodeBusy = errors.New("node is busy with another operation")

// Run identifies one workflow run.
type Run struct {
	WorkflowID, RunID string
}

// Provision starts workflows.Provision for in.Node with ID "node/<name>".
// A node already running an operation gets ErrNodeBusy (wrapped, with the
// running workflow's Run in the error's message), never a second operation.
func (c *Client) Provision(ctx context.Context, in workflows.ProvisionInput) (Run, error) {
	return c.startNodeOp(ctx, in.Node, nodeOp{
		summary: fmt.Sprintf("provision %s → %s@%s", in.Node, in.Image, in.Version),
		details: fmt.Sprintf("Node **%s** gets image **%s** version **%s**; check-in timeout %s per boot.",
			in.Node, in.Image, in.Version, in.CheckInTimeoutOrDefault()),
		image: in.Image, version: in.Version, user: in.User,
	}, workflows.Provision, in)
}

// Reinstall starts workflows.Reinstall for in.Node with ID "node/<name>"
// (ErrNodeBusy as Provision).
func (c *Client) Reinstall(ctx context.Context, in workflows.ReinstallInput) (Run, error) {
	drain := "no drain step"
	if in.DrainURL != "" {
		drain = fmt.Sprintf("drained through the inventory's webhook first (timeout %s)", in.DrainTimeoutOrDefault())
	}
	return c.startNodeOp(ctx, in.Node, nodeOp{
		summary: fmt.Sprintf("reinstall %s → %s@%s", in.Node, in.Image, in.Version),
		details: fmt.Sprintf("Node **%s** is wiped (its root destroyed) and gets image **%s** version **%s**; %s; check-in timeout %s per boot.",
			in.Node, in.Image, in.Version, drain, workflows.ProvisionInput{CheckInTimeout: in.CheckInTimeout}.CheckInTimeoutOrDefault()),
		image: in.Image, version: in.Version, user: in.User,
	}, workflows.Reinstall, in)
}

// Release starts workflows.Release for in.Node with ID "node/<name>"
// (ErrNodeBusy as Provision).
func (c *Client) Release(ctx context.Context, in workflows.ReleaseInput) (Run, error) {
	var power string
	switch in.PolicyOrDefault() {
	case workflows.ReleasePowerOff:
		power = "powered off"
	case workflows.ReleaseReference:
		power = "power-cycled into its reference environment (local disk)"
	default:
		return Run{}, fmt.Errorf("release %s: policy %q: want %q or %q", in.Node, in.Policy, workflows.ReleasePowerOff, workflows.ReleaseReference)
	}
	return c.startNodeOp(ctx, in.Node, nodeOp{
		summary: fmt.Sprintf("release %s (%s)", in.Node, in.PolicyOrDefault()),
		details: fmt.Sprintf("Node **%s** is released: %s, boot profile local disk, export withdrawn, root destroyed.", in.Node, power),
		user:    in.User,
	}, workflows.Release, in)
}

// nodeOp is what the Web UI and visibility show of a node operation from
// its start.
type nodeOp struct {
	summary, details string
	image, version   string // empty for Release
	user             string // the requesting user (RackflowOwner); empty: none
}

// startNodeOp starts a single-node workflow under the node's lock ID.
func (c *Client) startNodeOp(ctx context.Context, node string, op nodeOp, wf, in any) (Run, error) {
	id := workflows.NodeWorkflowID(node)
	opts := client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                workflows.TaskQueue,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            op.summary,
		StaticDetails:                            op.details,
		TypedSearchAttributes:                    workflows.UserStartAttributes(node, op.image, op.user),
	}
	if op.image != "" {
		opts.Memo = map[string]any{"image": op.image, "version": op.version}
	}
	run, err := c.c.ExecuteWorkflow(ctx, opts, wf, in)
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			return Run{WorkflowID: id, RunID: started.RunId}, fmt.Errorf("%s: %w (workflow %s run %s)", node, ErrNodeBusy, id, started.RunId)
		}
		return Run{}, fmt.Errorf("start %s: %w", id, err)
	}
	return Run{WorkflowID: id, RunID: run.GetRunID()}, nil
}

// WaitProvision blocks until the run ends and returns its result.
func (c *Client) WaitProvision(ctx context.Context, r Run) (workflows.ProvisionResult, error) {
	var res workflows.ProvisionResult
	err := c.c.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &res)
	return res, err
}

// WaitReinstall blocks until the run ends and returns its result.
func (c *Client) WaitReinstall(ctx context.Context, r Run) (workflows.ReinstallResult, error) {
	var res workflows.ReinstallResult
	err := c.c.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &res)
	return res, err
}

// WaitRelease blocks until the run ends and returns its result.
func (c *Client) WaitRelease(ctx context.Context, r Run) (workflows.ReleaseResult, error) {
	var res workflows.ReleaseResult
	err := c.c.GetWorkflow(ctx, r.WorkflowID, r.RunID).Get(ctx, &res)
	return res, err
}

// SignalDrained tells the node's running Reinstall that the node is
// drained. A node that runs no Reinstall yields ErrNoReinstall.
func (c *Client) SignalDrained(ctx context.Context, node string) error {
	id := workflows.NodeWorkflowID(node)
	d, err := c.c.DescribeWorkflowExecution(ctx, id, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return fmt.Errorf("%s: %w", node, ErrNoReinstall)
	}
	if err != nil {
		return fmt.Errorf("describe %s: %w", id, err)
	}
	info := d.GetWorkflowExecutionInfo()
	if info.GetType().GetName() != "Reinstall" || info.GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return fmt.Errorf("%s: %w (latest operation: %s, %s)", node, ErrNoReinstall, info.GetType().GetName(), info.GetStatus())
	}
	err = c.c.SignalWorkflow(ctx, id, info.GetExecution().GetRunId(), workflows.SignalDrained, nil)
	if errors.As(err, &notFound) {
		return fmt.Errorf("%s: %w", node, ErrNoReinstall)
	}
	return err
}

// ErrNoReinstall is returned when a drained signal is meant for a node that
// runs no Reinstall.
var ErrNoReinstall = errors.New("node runs no reinstall")

// Progress queries a running or finished Provision, Reinstall or Release.
func (c *Client) Progress(ctx context.Context, r Run) (workflows.Progress, error) {
	v, err := c.c.QueryWorkflow(ctx, r.WorkflowID, r.RunID, workflows.QueryProgress)
	if err != nil {
		return workflows.Progress{}, err
	}
	var p workflows.Progress
	return p, v.Get(&p)
}

// CheckIn implements netboot.Signaler: a verified check-in becomes the
// check-in signal of the node's workflow run. A run that is not running
// yields netboot.ErrNoOperation.
func (c *Client) CheckIn(ctx context.Context, in netboot.CheckIn) error {
	sig := workflows.CheckIn{Node: in.Node, Run: in.Run, Status: in.Status, Digest: in.Digest, Message: in.Message, At: time.Now().UTC()}
	err := c.c.SignalWorkflow(ctx, workflows.NodeWorkflowID(in.Node), in.Run, workflows.SignalCheckIn, sig)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return fmt.Errorf("%s run %s: %w", in.Node, in.Run, netboot.ErrNoOperation)
	}
	return err
}

// RequestPermit signals a permit request to rack's limiter
// ("limits/<rack>"), starting the limiter if it is not running.
func (c *Client) RequestPermit(ctx context.Context, rack string, req workflows.PermitRequest) error {
	opts := client.StartWorkflowOptions{
		ID:                       workflows.RackLimiterWorkflowID(rack),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            "permits of rack " + rack,
		TypedSearchAttributes:    workflows.RackAttributes(rack),
	}
	_, err := c.c.SignalWithStartWorkflow(ctx, opts.ID, workflows.SignalAcquire, req, opts,
		workflows.RackLimiter, workflows.LimiterState{Rack: rack, Limits: req.Limits})
	return err
}
