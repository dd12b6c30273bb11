package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// nonRetryable lists the error types retrying cannot fix; activities also
// return them as non-retryable ApplicationErrors.
var nonRetryable = []string{
	ErrUnknownNode, ErrUnknownImage, ErrUnknownVersion, ErrInvalidName,
	ErrRootConflict, ErrBMCAuth, ErrBMCDriver, ErrDrainRejected,
}

func retry(maxAttempts int32, maxInterval time.Duration) *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        maxInterval,
		MaximumAttempts:        maxAttempts,
		NonRetryableErrorTypes: nonRetryable,
	}
}

// Activity options per kind of step: every activity has an explicit
// StartToClose and RetryPolicy.
var (
	globalOpts = workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: retry(5, 30*time.Second)}
	cloneOpts  = workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Minute, HeartbeatTimeout: time.Minute, RetryPolicy: retry(5, time.Minute)}
	shortOpts  = workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: retry(5, 30*time.Second)}
	powerOpts  = workflow.ActivityOptions{StartToCloseTimeout: 2 * time.Minute, RetryPolicy: retry(4, 30*time.Second)}
	undoOpts   = workflow.ActivityOptions{StartToCloseTimeout: 2 * time.Minute, RetryPolicy: retry(10, time.Minute)}
	// endSeedingOpts: a few tries while the agents still seed (their
	// SeedFor, 10 min by default, ends it anyway), even if the rack's
	// worker is away.
	endSeedingOpts = workflow.ActivityOptions{StartToCloseTimeout: time.Minute, ScheduleToCloseTimeout: 10 * time.Minute, RetryPolicy: retry(5, 30*time.Second)}
	// ownerOpts: one directory request or two, a few quick retries.
	ownerOpts = workflow.ActivityOptions{StartToCloseTimeout: 20 * time.Second, RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 4,
		NonRetryableErrorTypes: append([]string{ErrNotOwner, ErrOwnershipNotConfigured, ErrInvalidUser, ErrOwnershipAuth}, nonRetryable...),
	}}
)

// opts sets the options and a UI summary on the global task queue.
func (p *nodeOp) opts(ctx workflow.Context, o workflow.ActivityOptions, summary string) workflow.Context {
	o.TaskQueue = TaskQueue
	o.Summary = summary
	return workflow.WithActivityOptions(ctx, o)
}

// rackOpts runs the activity on the node's rack queue.
func (p *nodeOp) rackOpts(ctx workflow.Context, o workflow.ActivityOptions, summary string) workflow.Context {
	o.TaskQueue = RackTaskQueue(p.node.Rack)
	o.Summary = summary
	return workflow.WithActivityOptions(ctx, o)
}
