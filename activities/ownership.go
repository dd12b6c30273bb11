package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/rackflow/rackflow/activities/ownership"
	"github.com/rackflow/rackflow/workflows"
)

// Ownership is the ownership directory as the activities use it: who may
// operate a node, and clearing its owner. Errors wrap package ownership's
// sentinels (ErrUnknownNode, ErrInvalidDN, ErrBadCredentials, …).
type Ownership interface {
	// CanOperate reports whether userDN owns node or is a member of it,
	// and names the node's current owner ("" when it is free).
	CanOperate(ctx context.Context, node, userDN string) (ok bool, owner string, err error)
	// ForceRelease clears node's owner, whoever it is, and returns the
	// previous owner ("" when it was free: not an error).
	ForceRelease(ctx context.Context, node string) (previous string, err error)
}

// LDAPOwnership is the production Ownership: the directory at Config,
// bound as the worker's service account (Config.BindDN), which must be
// able to read the server entries and, for ClearOwner, to clear any owner
// (an admin by the directory's ACLs). Every call dials, binds and closes
// its connection: calls are rare (one or two per node operation).
type LDAPOwnership struct {
	Config ownership.Config
}

// CanOperate implements Ownership.
func (o LDAPOwnership) CanOperate(ctx context.Context, node, userDN string) (bool, string, error) {
	c, err := ownership.Dial(ctx, o.Config)
	if err != nil {
		return false, "", err
	}
	defer c.Close()
	ok, err := c.CanOperate(ctx, node, userDN)
	if err != nil {
		return false, "", err
	}
	owners, err := c.Owners(ctx, []string{node})
	if err != nil {
		return false, "", err
	}
	owner := ""
	if len(owners) == 1 {
		owner = owners[0].Owner
	}
	return ok, owner, nil
}

// ForceRelease implements Ownership.
func (o LDAPOwnership) ForceRelease(ctx context.Context, node string) (string, error) {
	c, err := ownership.Dial(ctx, o.Config)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ForceRelease(ctx, node)
}

// CheckOwner fails unless in.User owns in.Node or is a member of it in the
// ownership directory: a non-retryable NotOwner error that names the node,
// the user and the current owner. A worker without a directory
// (a.Ownership nil) cannot check anyone and fails every call with the
// non-retryable OwnershipNotConfigured: a user that cannot be checked is
// never let through. (Workflows call CheckOwner only when their input
// names a user.)
func (a *Activities) CheckOwner(ctx context.Context, in workflows.CheckOwnerInput) error {
	if in.User == "" {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("check owner of %s: no user given", in.Node), workflows.ErrInvalidUser, nil)
	}
	if a.Ownership == nil {
		return notConfigured(fmt.Sprintf("cannot check that %s may operate %s", in.User, in.Node))
	}
	ok, owner, err := a.Ownership.CanOperate(ctx, in.Node, in.User)
	if err != nil {
		return ownershipError("check owner of "+in.Node, err)
	}
	if ok {
		a.Log.Info("ownership checked", "node", in.Node, "user", in.User, "owner", owner)
		return nil
	}
	msg := fmt.Sprintf("%s may not operate node %s: it is owned by %s and %s is not a member", in.User, in.Node, owner, in.User)
	if owner == "" {
		msg = fmt.Sprintf("%s may not operate node %s: it has no owner (check it out first: rackflow checkout %s)", in.User, in.Node, in.Node)
	}
	a.Log.Warn("not the owner", "node", in.Node, "user", in.User, "owner", owner)
	return temporal.NewNonRetryableApplicationError(msg, workflows.ErrNotOwner, nil, NotOwnerDetails{Node: in.Node, User: in.User, Owner: owner})
}

// NotOwnerDetails are the details of a NotOwner error.
type NotOwnerDetails struct {
	Node, User string
	Owner      string // "" when the node is free
}

// ClearOwner clears in.Node's owner in the ownership directory (the
// service account's force-release) and returns the previous owner. It is
// idempotent: a free node is left free. Without a directory it fails with
// the non-retryable OwnershipNotConfigured, as CheckOwner does.
func (a *Activities) ClearOwner(ctx context.Context, in workflows.ClearOwnerInput) (string, error) {
	if a.Ownership == nil {
		return "", notConfigured("cannot clear the owner of " + in.Node)
	}
	prev, err := a.Ownership.ForceRelease(ctx, in.Node)
	if err != nil {
		return "", ownershipError("clear owner of "+in.Node, err)
	}
	a.Log.Info("owner cleared", "node", in.Node, "previous_owner", prev, "released_by", in.User)
	return prev, nil
}

func notConfigured(what string) error {
	return temporal.NewNonRetryableApplicationError(
		"ownership is not configured on this worker (start it with --ldap-url, --ldap-base, --ldap-bind-dn and a password): "+what,
		workflows.ErrOwnershipNotConfigured, nil)
}

// ownershipError maps directory errors retrying cannot fix to typed
// non-retryable ApplicationErrors; the rest (network, timeouts) are
// retried.
func ownershipError(op string, err error) error {
	msg := op + ": " + err.Error()
	switch {
	case errors.Is(err, ownership.ErrInvalidDN):
		return temporal.NewNonRetryableApplicationError(msg, workflows.ErrInvalidUser, err)
	case errors.Is(err, ownership.ErrInvalidNode):
		return temporal.NewNonRetryableApplicationError(msg, workflows.ErrInvalidName, err)
	case errors.Is(err, ownership.ErrUnknownNode):
		return temporal.NewNonRetryableApplicationError(msg+" (no server entry in the directory: run `rackflow ldap sync`)", workflows.ErrUnknownNode, err)
	case errors.Is(err, ownership.ErrBadCredentials), errors.Is(err, ownership.ErrDenied):
		return temporal.NewNonRetryableApplicationError(msg+" (the worker's directory service account)", workflows.ErrOwnershipAuth, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
