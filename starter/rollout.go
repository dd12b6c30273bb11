package starter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/rackflow/rackflow/workflows"
)

// Errors of the rollout operations, returned wrapped with the rollout's ID.
var (
	// ErrNoRollout: no rollout has that ID (or its history is past retention).
	ErrNoRollout = errors.New("no such rollout")
	// ErrRolloutExists: StartRollout with the ID of a running or past rollout.
	ErrRolloutExists = errors.New("rollout already exists")
	// ErrRolloutEnded: a signal to a rollout that has already ended.
	ErrRolloutEnded = errors.New("rollout has already ended")
)

// RolloutIDOf is the rollout ID of a Rollout workflow ID ("rollout/<id>").
func RolloutIDOf(workflowID string) string {
	return strings.TrimPrefix(workflowID, workflows.RolloutWorkflowID(""))
}

// NewRolloutID makes a rollout ID from the time t (UTC, to the minute) and
// four random hex digits: "20261120-2315-ab12".
func NewRolloutID(t time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return t.UTC().Format("20060102-1504") + "-" + hex.EncodeToString(b[:])
}

// DescribeSelector renders a selector for summaries: its racks joined by
// commas and/or its node count, e.g. "r01,r02", "3 nodes",
// "r01 + 2 nodes", or "1 node (r01n01)".
func DescribeSelector(s workflows.Selector) string {
	var parts []string
	if len(s.Racks) > 0 {
		parts = append(parts, strings.Join(s.Racks, ","))
	}
	switch n := len(s.Nodes); {
	case n == 1 && len(s.Racks) == 0:
		parts = append(parts, "1 node ("+s.Nodes[0]+")")
	case n == 1:
		parts = append(parts, "1 node")
	case n > 1:
		parts = append(parts, fmt.Sprintf("%d nodes", n))
	}
	return strings.Join(parts, " + ")
}

// StartRollout starts workflows.Rollout with ID "rollout/<in.ID>"; an empty
// in.ID gets NewRolloutID(now), and the returned Run names the workflow
// (RolloutIDOf(run.WorkflowID) is the rollout ID). An ID already used by a
// running or past rollout gets ErrRolloutExists (wrapped). An empty
// selector, image or version is an error before anything is sent.
func (c *Client) StartRollout(ctx context.Context, in workflows.RolloutInput) (Run, error) {
	if len(in.Selector.Racks) == 0 && len(in.Selector.Nodes) == 0 {
		return Run{}, errors.New("start rollout: the selector names no rack and no node")
	}
	if in.Image == "" || in.Version == "" {
		return Run{}, errors.New("start rollout: image and version are required")
	}
	if in.ID == "" {
		in.ID = NewRolloutID(time.Now())
	}
	id := workflows.RolloutWorkflowID(in.ID)
	opts := client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// A rollout ID names one rollout for good: list/show/watch find it.
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            fmt.Sprintf("%s → %s@%s", DescribeSelector(in.Selector), in.Image, in.Version),
		StaticDetails:                            rolloutDetails(in),
		Memo:                                     map[string]any{"image": in.Image, "version": in.Version},
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrRollout.ValueSet(in.ID), workflows.AttrImage.ValueSet(in.Image)),
	}
	run, err := c.c.ExecuteWorkflow(ctx, opts, workflows.Rollout, in)
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			return Run{WorkflowID: id, RunID: started.RunId}, fmt.Errorf("rollout %s: %w (workflow %s run %s)", in.ID, ErrRolloutExists, id, started.RunId)
		}
		return Run{}, fmt.Errorf("start %s: %w", id, err)
	}
	return Run{WorkflowID: id, RunID: run.GetRunID()}, nil
}

// rolloutDetails is the Web UI's markdown description of a rollout request.
func rolloutDetails(in workflows.RolloutInput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Rollout **%s**: image **%s** version **%s**", in.ID, in.Image, in.Version)
	if len(in.Selector.Racks) > 0 {
		fmt.Fprintf(&b, " on every node of rack(s) %s", strings.Join(in.Selector.Racks, ", "))
	}
	if len(in.Selector.Nodes) > 0 {
		if len(in.Selector.Racks) > 0 {
			b.WriteString(" and")
		}
		fmt.Fprintf(&b, " on node(s) %s", strings.Join(in.Selector.Nodes, ", "))
	}
	window := "the rack's in-flight limit"
	if in.Window > 0 {
		window = fmt.Sprintf("%d nodes", in.Window)
	}
	timeout := in.CheckInTimeout
	if timeout <= 0 {
		timeout = workflows.DefaultCheckInTimeout
	}
	fmt.Fprintf(&b, ".\n\nFailure budget %s overall, %s per rack; window %s per rack; check-in timeout %s per boot.",
		in.MaxFailures, in.RackMaxFailures, window, timeout)
	return b.String()
}

// PauseRollout signals the rollout to start no new nodes (running ones go
// on). ErrNoRollout / ErrRolloutEnded wrapped when it cannot be paused.
func (c *Client) PauseRollout(ctx context.Context, id string) error {
	return c.signalRollout(ctx, id, workflows.SignalPause, nil)
}

// ResumeRollout signals a paused rollout to start nodes again.
func (c *Client) ResumeRollout(ctx context.Context, id string) error {
	return c.signalRollout(ctx, id, workflows.SignalResume, nil)
}

// CancelRollout signals the rollout to start no new nodes and end as
// cancelled: with undo, running nodes are cancelled and undo their steps;
// without, they finish.
func (c *Client) CancelRollout(ctx context.Context, id string, undo bool) error {
	return c.signalRollout(ctx, id, workflows.SignalCancel, workflows.CancelRequest{Undo: undo})
}

// AddRolloutNodes adds the nodes of sel to a running rollout (a rack not
// yet in the rollout gets its own RackRollout).
func (c *Client) AddRolloutNodes(ctx context.Context, id string, sel workflows.Selector) error {
	if len(sel.Racks) == 0 && len(sel.Nodes) == 0 {
		return fmt.Errorf("rollout %s: add-nodes: the selector names no rack and no node", id)
	}
	return c.signalRollout(ctx, id, workflows.SignalAddNodes, workflows.AddNodes{Selector: sel})
}

func (c *Client) signalRollout(ctx context.Context, id, signal string, arg any) error {
	err := c.c.SignalWorkflow(ctx, workflows.RolloutWorkflowID(id), "", signal, arg)
	if err == nil {
		return nil
	}
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		// The server answers NotFound both for an unknown ID and for a
		// rollout that has ended: tell them apart.
		if s, derr := c.DescribeRollout(ctx, id); derr == nil && s.Status != enums.WORKFLOW_EXECUTION_STATUS_RUNNING.String() {
			return fmt.Errorf("rollout %s (%s): %s: %w", id, s.State, signal, ErrRolloutEnded)
		}
	}
	return c.rolloutErr(id, signal, err)
}

// rolloutErr wraps err of an operation on rollout id; NotFound becomes
// ErrNoRollout.
func (c *Client) rolloutErr(id, op string, err error) error {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return fmt.Errorf("rollout %s: %w", id, ErrNoRollout)
	}
	return fmt.Errorf("rollout %s: %s: %w", id, op, err)
}

// RolloutProgress queries a rollout's progress: counts per rack, failures
// so far, ETA. A rollout that has ended answers too, while a worker can
// replay it. ErrNoRollout (wrapped) for an unknown ID.
func (c *Client) RolloutProgress(ctx context.Context, id string) (workflows.RolloutProgress, error) {
	v, err := c.c.QueryWorkflow(ctx, workflows.RolloutWorkflowID(id), "", workflows.QueryRolloutProgress)
	if err != nil {
		return workflows.RolloutProgress{}, c.rolloutErr(id, "progress", err)
	}
	var p workflows.RolloutProgress
	if err := v.Get(&p); err != nil {
		return workflows.RolloutProgress{}, fmt.Errorf("rollout %s: progress: %w", id, err)
	}
	return p, nil
}

// WaitRollout blocks until the rollout ends (following continue-as-new)
// and returns its report. A rollout that ended failed or cancelled is not
// an error: its report comes back with that State and a nil error. Errors:
// ErrNoRollout (wrapped) for an unknown ID; a rollout that could not run
// at all (e.g. an unknown rack) or was terminated returns the workflow's
// error, wrapped.
func (c *Client) WaitRollout(ctx context.Context, id string) (workflows.RolloutResult, error) {
	return c.rolloutResult(ctx, id, "")
}

func (c *Client) rolloutResult(ctx context.Context, id, runID string) (workflows.RolloutResult, error) {
	var res workflows.RolloutResult
	err := c.c.GetWorkflow(ctx, workflows.RolloutWorkflowID(id), runID).Get(ctx, &res)
	if err == nil {
		return res, nil
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Type() == workflows.ErrRolloutNotCompleted && app.HasDetails() {
		if derr := app.Details(&res); derr == nil {
			return res, nil
		}
	}
	return workflows.RolloutResult{}, c.rolloutErr(id, "wait", err)
}

// RolloutSummary is one rollout as visibility records it.
type RolloutSummary struct {
	ID string `json:"id"`
	// State is the rollout's state: running (possibly paused: visibility
	// cannot tell), completed, failed or cancelled; "terminated" or
	// "timed-out" when it was stopped from outside rackflow.
	State   workflows.RolloutState `json:"state"`
	Status  string                 `json:"status"` // Temporal's: Running, Completed, Failed, Terminated, …
	Image   string                 `json:"image"`
	Version string                 `json:"version"`
	Start   time.Time              `json:"start"`
	Close   time.Time              `json:"close,omitzero"` // zero while running
	RunID   string                 `json:"run_id"`
}

// DescribeRollout returns the summary of one rollout (its latest run).
// ErrNoRollout (wrapped) for an unknown ID.
func (c *Client) DescribeRollout(ctx context.Context, id string) (RolloutSummary, error) {
	resp, err := c.c.DescribeWorkflowExecution(ctx, workflows.RolloutWorkflowID(id), "")
	if err != nil {
		return RolloutSummary{}, c.rolloutErr(id, "describe", err)
	}
	return c.summarize(ctx, resp.GetWorkflowExecutionInfo()), nil
}

// ListRollouts returns every rollout visibility knows, newest first (by
// start time), one entry per rollout ID (its latest run).
func (c *Client) ListRollouts(ctx context.Context) ([]RolloutSummary, error) {
	latest := map[string]*workflowpb.WorkflowExecutionInfo{}
	var token []byte
	for {
		resp, err := c.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowType = 'Rollout'", NextPageToken: token, PageSize: 1000,
		})
		if err != nil {
			return nil, fmt.Errorf("list rollouts: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			wid := e.GetExecution().GetWorkflowId()
			if old, ok := latest[wid]; !ok || e.GetStartTime().AsTime().After(old.GetStartTime().AsTime()) {
				latest[wid] = e
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			break
		}
	}
	out := make([]RolloutSummary, 0, len(latest))
	for _, e := range latest {
		out = append(out, c.summarize(ctx, e))
	}
	slices.SortFunc(out, func(a, b RolloutSummary) int {
		if d := b.Start.Compare(a.Start); d != 0 {
			return d
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// summarize turns a visibility record into a RolloutSummary. A failed run
// is looked into (one history read) to tell failed from cancelled.
func (c *Client) summarize(ctx context.Context, e *workflowpb.WorkflowExecutionInfo) RolloutSummary {
	s := RolloutSummary{
		ID:     RolloutIDOf(e.GetExecution().GetWorkflowId()),
		Status: e.GetStatus().String(),
		Start:  e.GetStartTime().AsTime(),
		RunID:  e.GetExecution().GetRunId(),
	}
	if ct := e.GetCloseTime(); ct != nil && !ct.AsTime().IsZero() {
		s.Close = ct.AsTime()
	}
	dc := converter.GetDefaultDataConverter()
	if p, ok := e.GetSearchAttributes().GetIndexedFields()[workflows.AttrImage.GetName()]; ok {
		_ = dc.FromPayload(p, &s.Image)
	}
	if p, ok := e.GetMemo().GetFields()["image"]; ok && s.Image == "" {
		_ = dc.FromPayload(p, &s.Image)
	}
	if p, ok := e.GetMemo().GetFields()["version"]; ok {
		_ = dc.FromPayload(p, &s.Version)
	}
	switch e.GetStatus() {
	case enums.WORKFLOW_EXECUTION_STATUS_RUNNING, enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		s.State = workflows.RolloutRunning
	case enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		s.State = workflows.RolloutCompleted
	case enums.WORKFLOW_EXECUTION_STATUS_CANCELED:
		s.State = workflows.RolloutCancelled
	case enums.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		s.State = "terminated"
	case enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		s.State = "timed-out"
	default:
		s.State = workflows.RolloutFailed
		if res, err := c.rolloutResult(ctx, s.ID, s.RunID); err == nil && res.State != "" {
			s.State = res.State
		}
	}
	return s
}
