// Package ownership keeps server ownership in LDAP, as HOP-SCOTCH does (paper
// §3.3): each node is a groupOfNames entry cn=<node>,ou=servers,<base> whose
// owner is the DN of the user who checked it out and whose members are the
// users the owner lets operate it. The directory's ACLs enforce the rules
// (see dev/ldap for a configuration), so direct LDAP clients obey them too;
// this client only speaks the protocol:
//
//   - Checkout adds owner=<me> under the RFC 4528 assertion (!(owner=*)):
//     of concurrent checkouts exactly one wins.
//   - Release deletes exactly the value owner=<me>.
//   - The admin (a DN the ACLs let write anything, e.g. the root DN) syncs
//     entries, force-releases and transfers.
//
// groupOfNames requires a member: entries carry their own DN as a placeholder
// member, which Owners and CanOperate ignore.
package ownership

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// AssertionControlOID is the LDAP assertion control (RFC 4528).
const AssertionControlOID = "1.3.6.1.1.12"

// freeAssertion is the filter a checkout asserts: the node has no owner.
const freeAssertion = "(!(owner=*))"

// Config says where the directory is and who binds. Password is never
// logged: Config's LogValue and String omit it.
type Config struct {
	URL      string        // ldap://host:port/ or ldaps://host:port/
	BaseDN   string        // suffix holding ou=servers, e.g. dc=example,dc=com
	BindDN   string        // the user's DN
	Password string        // the user's password
	Timeout  time.Duration // per request and for dialling; default 10 s
	TLS      *tls.Config   // for ldaps:// (nil: system defaults)
}

// String describes the connection without the password.
func (c Config) String() string {
	return fmt.Sprintf("ldap %s base %s as %s", c.URL, c.BaseDN, c.BindDN)
}

// GoString keeps %#v from printing the password.
func (c Config) GoString() string { return "ownership.Config{" + c.String() + "}" }

// LogValue logs the connection without the password.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", c.URL), slog.String("base", c.BaseDN), slog.String("bind_dn", c.BindDN))
}

// Client is an authenticated connection to the directory. It is safe for
// concurrent use. Every method checks ctx before each request; a request in
// flight is bounded by Config.Timeout.
type Client struct {
	conn *ldap.Conn
	base string
	me   string
}

// Ownership is one server entry as Owners reports it.
type Ownership struct {
	Node    string   `json:"node"`
	Owner   string   `json:"owner,omitempty"`   // owner DN; empty when free
	Members []string `json:"members,omitempty"` // member DNs (placeholder omitted)
}

// Server is one entry Sync creates or updates.
type Server struct {
	Node        string
	Description string // e.g. "rack r01 slot 3"; empty leaves it unset
}

// SyncResult counts what Sync did, by node name.
type SyncResult struct {
	Created, Updated, Unchanged []string
}

// Dial connects to cfg.URL and binds as cfg.BindDN. Errors: ErrBadCredentials
// (wrapped) for a wrong DN or password, ErrInvalidDN for an unparsable bind or
// base DN, otherwise the network or LDAP error.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if _, err := checkDN(cfg.BindDN); err != nil {
		return nil, fmt.Errorf("bind DN: %w", err)
	}
	if _, err := checkDN(cfg.BaseDN); err != nil {
		return nil, fmt.Errorf("base DN: %w", err)
	}
	if cfg.Password == "" {
		// An empty password is an unauthenticated bind (RFC 4513 §5.1.2).
		return nil, fmt.Errorf("%s: empty password: %w", cfg.BindDN, ErrBadCredentials)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: cfg.Timeout}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	opts := []ldap.DialOpt{ldap.DialWithDialer(d)}
	if cfg.TLS != nil {
		opts = append(opts, ldap.DialWithTLSConfig(cfg.TLS))
	}
	conn, err := ldap.DialURL(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("ldap dial %s: %w", cfg.URL, err)
	}
	conn.SetTimeout(cfg.Timeout)
	if err := conn.Bind(cfg.BindDN, cfg.Password); err != nil {
		conn.Close()
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return nil, fmt.Errorf("bind as %s: %w", cfg.BindDN, ErrBadCredentials)
		}
		return nil, fmt.Errorf("bind as %s: %w", cfg.BindDN, err)
	}
	return &Client{conn: conn, base: cfg.BaseDN, me: cfg.BindDN}, nil
}

// Close unbinds and closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Me returns the bind DN: the owner value Checkout writes.
func (c *Client) Me() string { return c.me }

// Checkout makes the caller the owner of node, atomically: it adds
// owner=<me> under the assertion (!(owner=*)), so of concurrent checkouts
// exactly one succeeds. Checking out a node the caller already owns succeeds
// (idempotent). Errors: *OwnedError (wraps ErrOwned, names the owner) when
// another user owns it, ErrUnknownNode, ErrInvalidNode, ErrDenied.
func (c *Client) Checkout(ctx context.Context, node string) error {
	dn, err := NodeDN(c.base, node)
	if err != nil {
		return err
	}
	assertion, err := ldap.CompileFilter(freeAssertion)
	if err != nil {
		return fmt.Errorf("checkout %s: %w", node, err)
	}
	ctrl := &ldap.ControlString{ControlType: AssertionControlOID, Criticality: true, ControlValue: string(assertion.Bytes())}
	// A loser reads the owner to name it; if that owner released meanwhile
	// the node is free again and the checkout is retried, a bounded number
	// of times.
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		req := ldap.NewModifyRequest(dn, []ldap.Control{ctrl})
		req.Add("owner", []string{c.me})
		err = c.conn.Modify(req)
		if err == nil {
			return nil
		}
		switch {
		case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
			return fmt.Errorf("checkout %s: %w", node, ErrUnknownNode)
		case ldap.IsErrorWithCode(err, ldap.LDAPResultAssertionFailed),
			ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights),
			ldap.IsErrorWithCode(err, ldap.LDAPResultAttributeOrValueExists):
		default:
			return fmt.Errorf("checkout %s: %w", node, err)
		}
		owner, oerr := c.owner(ctx, dn)
		switch {
		case oerr != nil:
			return fmt.Errorf("checkout %s: %w (reading the owner: %v)", node, classify(err), oerr)
		case owner != "" && sameDN(owner, c.me):
			return nil
		case owner != "":
			return fmt.Errorf("checkout: %w", &OwnedError{Node: node, Owner: owner})
		case ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights):
			// Free, yet the directory refused: not a race but a policy.
			return fmt.Errorf("checkout %s: %w", node, ErrDenied)
		case attempt >= 2:
			return fmt.Errorf("checkout: %w", &OwnedError{Node: node})
		}
	}
}

// Release clears the caller's ownership of node by deleting exactly the
// value owner=<me>. Releasing a free node succeeds (idempotent: a second
// release, or one after an admin's ForceRelease, is not an error). Errors:
// *NotOwnerError (wraps ErrNotOwner, names the owner) when another user owns
// it, ErrUnknownNode, ErrInvalidNode.
func (c *Client) Release(ctx context.Context, node string) error {
	dn, err := NodeDN(c.base, node)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	req := ldap.NewModifyRequest(dn, nil)
	req.Delete("owner", []string{c.me})
	err = c.conn.Modify(req)
	if err == nil {
		return nil
	}
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return fmt.Errorf("release %s: %w", node, ErrUnknownNode)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute),
		ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights):
	default:
		return fmt.Errorf("release %s: %w", node, err)
	}
	owner, oerr := c.owner(ctx, dn)
	switch {
	case oerr != nil:
		return fmt.Errorf("release %s: %w (reading the owner: %v)", node, classify(err), oerr)
	case owner == "":
		return nil
	case sameDN(owner, c.me):
		return fmt.Errorf("release %s: %w", node, classify(err))
	default:
		return fmt.Errorf("release: %w", &NotOwnerError{Node: node, Owner: owner})
	}
}

// ForceRelease (admin) deletes every owner of node and returns the previous
// owner ("" if it was free: idempotent). Errors: ErrDenied for a non-admin,
// ErrUnknownNode, ErrInvalidNode.
func (c *Client) ForceRelease(ctx context.Context, node string) (previous string, err error) {
	dn, err := NodeDN(c.base, node)
	if err != nil {
		return "", err
	}
	previous, err = c.owner(ctx, dn)
	if err != nil {
		return "", fmt.Errorf("force-release %s: %w", node, err)
	}
	if previous == "" {
		return "", nil
	}
	req := ldap.NewModifyRequest(dn, nil)
	req.Delete("owner", nil)
	if err := c.conn.Modify(req); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute) {
		return "", fmt.Errorf("force-release %s: %w", node, classify(err))
	}
	return previous, nil
}

// Transfer (admin) makes toDN the only owner of node, whoever owned it.
// toDN must name an existing entry (the paper: no transfer to a non-existent
// user). Errors: ErrInvalidDN, ErrUnknownUser, ErrDenied for a non-admin,
// ErrUnknownNode, ErrInvalidNode.
func (c *Client) Transfer(ctx context.Context, node, toDN string) error {
	dn, err := NodeDN(c.base, node)
	if err != nil {
		return err
	}
	if _, err := checkDN(toDN); err != nil {
		return fmt.Errorf("transfer %s: %w", node, err)
	}
	if ok, err := c.exists(ctx, toDN); err != nil {
		return fmt.Errorf("transfer %s: %w", node, err)
	} else if !ok {
		return fmt.Errorf("transfer %s to %s: %w", node, toDN, ErrUnknownUser)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace("owner", []string{toDN})
	if err := c.conn.Modify(req); err != nil {
		return fmt.Errorf("transfer %s: %w", node, classify(err))
	}
	return nil
}

// AddMember (owner) lets userDN operate node. Adding a present member
// succeeds. Errors: ErrInvalidDN, ErrDenied for a non-owner, ErrUnknownNode,
// ErrInvalidNode.
func (c *Client) AddMember(ctx context.Context, node, userDN string) error {
	return c.editMember(ctx, node, userDN, true)
}

// RemoveMember (owner) withdraws userDN's right to operate node. Removing an
// absent member succeeds. Errors as AddMember.
func (c *Client) RemoveMember(ctx context.Context, node, userDN string) error {
	return c.editMember(ctx, node, userDN, false)
}

func (c *Client) editMember(ctx context.Context, node, userDN string, add bool) error {
	dn, err := NodeDN(c.base, node)
	if err != nil {
		return err
	}
	if _, err := checkDN(userDN); err != nil {
		return fmt.Errorf("member of %s: %w", node, err)
	}
	if sameDN(userDN, dn) {
		return fmt.Errorf("member of %s: %q is the placeholder member: %w", node, userDN, ErrInvalidDN)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	req := ldap.NewModifyRequest(dn, nil)
	if add {
		req.Add("member", []string{userDN})
	} else {
		req.Delete("member", []string{userDN})
	}
	err = c.conn.Modify(req)
	switch {
	case err == nil,
		add && ldap.IsErrorWithCode(err, ldap.LDAPResultAttributeOrValueExists),
		!add && ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute):
		return nil
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return fmt.Errorf("member of %s: %w", node, ErrUnknownNode)
	}
	return fmt.Errorf("member of %s: %w", node, classify(err))
}

// Owners returns the ownership of nodes, sorted by node; nil nodes means
// every server entry. Nodes without an entry are left out and reported in
// an error wrapping ErrUnknownNode, returned with the others' results.
// Errors: ErrInvalidNode (before any request), LDAP errors.
func (c *Client) Owners(ctx context.Context, nodes []string) ([]Ownership, error) {
	for _, n := range nodes {
		if !ValidNode(n) {
			return nil, fmt.Errorf("%q: %w", n, ErrInvalidNode)
		}
	}
	servers := ServersDN(c.base)
	var out []Ownership
	// OR filters of at most 100 names keep each request small.
	for start := 0; start == 0 || start < len(nodes); start += 100 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk := nodes[start:min(start+100, len(nodes))]
		req := ldap.NewSearchRequest(servers, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
			nodesFilter(chunk), []string{"cn", "owner", "member"}, nil)
		res, err := c.conn.Search(req)
		if err != nil {
			if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
				return nil, fmt.Errorf("owners: %s: %w", servers, ErrUnknownNode)
			}
			return nil, fmt.Errorf("owners: %w", classify(err))
		}
		for _, e := range res.Entries {
			out = append(out, c.ownership(e))
		}
		if len(nodes) == 0 {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	var missing []string
	for _, n := range nodes {
		if !slices.ContainsFunc(out, func(o Ownership) bool { return o.Node == n }) && !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("owners: %v: %w", missing, ErrUnknownNode)
	}
	return out, nil
}

// CanOperate reports whether userDN may operate node: it is the owner or a
// member. Errors: ErrInvalidDN, ErrUnknownNode, ErrInvalidNode.
func (c *Client) CanOperate(ctx context.Context, node, userDN string) (bool, error) {
	dn, err := NodeDN(c.base, node)
	if err != nil {
		return false, err
	}
	if _, err := checkDN(userDN); err != nil {
		return false, fmt.Errorf("can operate %s: %w", node, err)
	}
	if sameDN(userDN, dn) {
		return false, nil // the placeholder member is not a user
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	req := ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		operatorFilter(userDN), []string{"1.1"}, nil)
	res, err := c.conn.Search(req)
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return false, fmt.Errorf("can operate %s: %w", node, ErrUnknownNode)
		}
		return false, fmt.Errorf("can operate %s: %w", node, classify(err))
	}
	return len(res.Entries) == 1, nil
}

// Sync (admin) creates the groupOfNames entry of every server that has none
// and sets the description of those whose description differs; owners and
// members are left alone. Entries of servers not listed are not removed.
// Errors: ErrInvalidNode (before any request), ErrDenied for a non-admin.
func (c *Client) Sync(ctx context.Context, servers []Server) (SyncResult, error) {
	var r SyncResult
	for _, s := range servers {
		if !ValidNode(s.Node) {
			return r, fmt.Errorf("sync: %q: %w", s.Node, ErrInvalidNode)
		}
	}
	have := map[string]string{} // node → description
	res, err := c.conn.Search(ldap.NewSearchRequest(ServersDN(c.base), ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		nodesFilter(nil), []string{"cn", "description"}, nil))
	if err != nil {
		return r, fmt.Errorf("sync: %w", classify(err))
	}
	for _, e := range res.Entries {
		have[e.GetAttributeValue("cn")] = e.GetAttributeValue("description")
	}
	for _, s := range servers {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		dn, _ := NodeDN(c.base, s.Node)
		desc, ok := have[s.Node]
		switch {
		case !ok:
			req := ldap.NewAddRequest(dn, nil)
			req.Attribute("objectClass", []string{"groupOfNames"})
			req.Attribute("cn", []string{s.Node})
			req.Attribute("member", []string{dn})
			if s.Description != "" {
				req.Attribute("description", []string{s.Description})
			}
			if err := c.conn.Add(req); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
				return r, fmt.Errorf("sync %s: %w", s.Node, classify(err))
			}
			r.Created = append(r.Created, s.Node)
			have[s.Node] = s.Description
		case s.Description != "" && desc != s.Description:
			req := ldap.NewModifyRequest(dn, nil)
			req.Replace("description", []string{s.Description})
			if err := c.conn.Modify(req); err != nil {
				return r, fmt.Errorf("sync %s: %w", s.Node, classify(err))
			}
			r.Updated = append(r.Updated, s.Node)
		default:
			r.Unchanged = append(r.Unchanged, s.Node)
		}
	}
	return r, nil
}

// owner reads the owner of the entry dn ("" when free).
func (c *Client) owner(ctx context.Context, dn string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	res, err := c.conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"owner"}, nil))
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return "", ErrUnknownNode
		}
		return "", classify(err)
	}
	if len(res.Entries) != 1 {
		return "", ErrUnknownNode
	}
	return res.Entries[0].GetAttributeValue("owner"), nil
}

// exists reports whether the entry dn exists.
func (c *Client) exists(ctx context.Context, dn string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	res, err := c.conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"1.1"}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return false, nil
	}
	if err != nil {
		return false, classify(err)
	}
	return len(res.Entries) == 1, nil
}

func (c *Client) ownership(e *ldap.Entry) Ownership {
	o := Ownership{Node: e.GetAttributeValue("cn"), Owner: e.GetAttributeValue("owner")}
	for _, m := range e.GetAttributeValues("member") {
		if !sameDN(m, e.DN) {
			o.Members = append(o.Members, m)
		}
	}
	return o
}

// classify maps LDAP results to this package's sentinels where one fits,
// keeping the LDAP error in the message.
func classify(err error) error {
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights):
		return fmt.Errorf("%w: %v", ErrDenied, err)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		return fmt.Errorf("%w: %v", ErrBadCredentials, err)
	}
	return err
}
