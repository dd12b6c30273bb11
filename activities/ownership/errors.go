package ownership

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the Client returns wraps one of these (or the
// underlying *ldap.Error for failures this package does not classify), so
// callers test with errors.Is.
var (
	// ErrInvalidNode: the node name is not [a-z0-9][a-z0-9._-]*, ≤ 63
	// characters. Nothing was sent to the directory.
	ErrInvalidNode = errors.New("invalid node name")
	// ErrInvalidDN: a user DN does not parse as a distinguished name.
	ErrInvalidDN = errors.New("invalid DN")
	// ErrUnknownNode: there is no server entry cn=<node>,ou=servers,<base>
	// (run `rackflow ldap sync`).
	ErrUnknownNode = errors.New("unknown node")
	// ErrUnknownUser: Transfer's target DN has no entry in the directory.
	ErrUnknownUser = errors.New("unknown user")
	// ErrOwned: Checkout lost — another user owns the node. The *OwnedError
	// that wraps it names the owner.
	ErrOwned = errors.New("node is owned by another user")
	// ErrNotOwner: Release of a node that another user owns. The
	// *NotOwnerError that wraps it names the owner.
	ErrNotOwner = errors.New("not the owner of the node")
	// ErrDenied: the directory refused the operation (LDAP result 50,
	// insufficient access), e.g. a non-admin calling Sync, ForceRelease or
	// Transfer, or a non-owner editing members.
	ErrDenied = errors.New("permission denied by the directory")
	// ErrBadCredentials: the bind DN or password is wrong (LDAP result 49).
	ErrBadCredentials = errors.New("invalid LDAP credentials")
)

// OwnedError is returned by Checkout when the node already has another owner.
// It wraps ErrOwned.
type OwnedError struct {
	Node  string
	Owner string // DN of the current owner; empty if it was released meanwhile
}

func (e *OwnedError) Error() string {
	return fmt.Sprintf("node %s is owned by %s", e.Node, e.Owner)
}

// Unwrap returns ErrOwned.
func (e *OwnedError) Unwrap() error { return ErrOwned }

// NotOwnerError is returned by Release when another user owns the node. It
// wraps ErrNotOwner.
type NotOwnerError struct {
	Node  string
	Owner string // DN of the actual owner
}

func (e *NotOwnerError) Error() string {
	return fmt.Sprintf("node %s is owned by %s, not by you", e.Node, e.Owner)
}

// Unwrap returns ErrNotOwner.
func (e *NotOwnerError) Unwrap() error { return ErrNotOwner }
