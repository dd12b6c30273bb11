package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Maximum checkout duration (HOP-SCOTCH §3.3: the admin policy that a node
// is not kept forever): a checkout made for a duration starts
// CheckoutExpiry, whose timer releases the node when the duration is over.
// Releasing the node, or checking it out again, cancels the timer.

// CheckoutExpiryWorkflowID is the ID of a node's checkout timer:
// "checkout/<node>". One timer runs per node; a new checkout replaces it.
func CheckoutExpiryWorkflowID(node string) string { return "checkout/" + node }

// ErrInvalidCheckout: a CheckoutExpiry input without node, user or a
// positive duration (the workflow fails, nothing is released).
const ErrInvalidCheckout = "InvalidCheckout"

// Bounds of CheckoutExpiry's wait for a busy node.
const (
	// CheckoutBusyRetry is how long CheckoutExpiry waits before it tries
	// again to release a node busy with another operation.
	CheckoutBusyRetry = 5 * time.Minute
	// CheckoutBusyTries bounds those tries (24 × 5 min: two hours).
	CheckoutBusyTries = 24
)

// CheckoutExpiryInput is a checkout of Node by User (a DN) that ends
// after Duration.
type CheckoutExpiryInput struct {
	Node     string
	User     string
	Duration time.Duration
	// Policy is the Release policy on expiry (ReleasePowerOff when empty).
	Policy string `json:",omitempty"`
}

// CheckoutExpiryResult says how the checkout ended.
type CheckoutExpiryResult struct {
	Node, User string
	Expired    time.Time      // when the duration ran out
	Released   *ReleaseResult // the release run on expiry; nil when the user no longer owned the node
	Note       string         `json:",omitempty"` // why nothing was released
}

// CheckoutExpiry waits Duration (a workflow timer), then releases the node
// as User with a Release child (ID "node/<name>": Release checks that User
// still owns the node or is a member, powers it off, removes its boot
// profile and export, destroys its root and clears its owner). A node busy
// with another operation is tried again every CheckoutBusyRetry, at most
// CheckoutBusyTries times; a node User no longer may operate (released,
// transferred) is left alone. Cancelling the workflow (the user's release
// or a new checkout) ends it before the timer without touching anything.
func CheckoutExpiry(ctx workflow.Context, in CheckoutExpiryInput) (CheckoutExpiryResult, error) {
	res := CheckoutExpiryResult{Node: in.Node, User: in.User}
	if in.Node == "" || in.User == "" || in.Duration <= 0 {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("checkout expiry: want a node, a user and a positive duration (got %q, %q, %s)", in.Node, in.User, in.Duration), ErrInvalidCheckout, nil)
	}
	until := workflow.Now(ctx).Add(in.Duration)
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** checked out by %s until %s (then released)", in.Node, in.User, until.UTC().Format(time.RFC3339)))
	if err := workflow.NewTimerWithOptions(ctx, in.Duration, workflow.TimerOptions{
		Summary: fmt.Sprintf("checkout of %s by %s: %s", in.Node, in.User, in.Duration),
	}).Get(ctx, nil); err != nil {
		return res, err // cancelled: released or checked out again
	}
	res.Expired = workflow.Now(ctx)
	workflow.GetLogger(ctx).Info("checkout expired: releasing", "node", in.Node, "user", in.User, "duration", in.Duration)
	for try := 1; ; try++ {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** checkout by %s expired at %s: releasing (try %d)", in.Node, in.User, res.Expired.UTC().Format(time.RFC3339), try))
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            NodeWorkflowID(in.Node),
			TaskQueue:             TaskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			// The release finishes even when this workflow is cancelled.
			ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
			StaticSummary:     fmt.Sprintf("release %s: checkout by %s expired", in.Node, in.User),
		})
		var rel ReleaseResult
		err := workflow.ExecuteChildWorkflow(cctx, Release, ReleaseInput{Node: in.Node, Policy: in.Policy, User: in.User}).Get(ctx, &rel)
		switch {
		case err == nil:
			res.Released = &rel
			workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** released: checkout by %s expired", in.Node, in.User))
			return res, nil
		case errorType(err) == ErrNotOwner:
			res.Note = in.User + " no longer owns " + in.Node + ": nothing released"
			workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s**: %s", in.Node, res.Note))
			return res, nil
		case isAlreadyStarted(err) && try < CheckoutBusyTries:
			workflow.GetLogger(ctx).Warn("node busy: release tried again later", "node", in.Node, "retry_in", CheckoutBusyRetry)
			if err := workflow.NewTimerWithOptions(ctx, CheckoutBusyRetry, workflow.TimerOptions{Summary: in.Node + " is busy: release again"}).Get(ctx, nil); err != nil {
				return res, err
			}
		default:
			return res, fmt.Errorf("release of %s on expiry: %w", in.Node, err)
		}
	}
}

// errorType is the type of the innermost typed ApplicationError in err, or
// "" without one.
func errorType(err error) string {
	var app *temporal.ApplicationError
	typ := ""
	for e := err; errors.As(e, &app); e = app.Unwrap() {
		if t := app.Type(); t != "" && t != "wrapError" {
			typ = t
		}
	}
	return typ
}
