package activities

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/rackflow/rackflow/activities/ownership"
	devldap "github.com/rackflow/rackflow/dev/ldap"
	"github.com/rackflow/rackflow/workflows"
)

// ownerFixture is a throwaway slapd with server entries n1…n3 (alice owns
// n1 and lets carol operate it, n2 is free) and the ownership activities
// bound as its admin, the worker's service account.
type ownerFixture struct {
	srv  *devldap.Server
	acts *Activities
	env  *testsuite.TestActivityEnvironment
}

func newOwnerFixture(t *testing.T) *ownerFixture {
	t.Helper()
	srv := devldap.StartTest(t, devldap.Options{})
	ctx := context.Background()
	dial := func(dn, pw string) *ownership.Client {
		c, err := ownership.Dial(ctx, ownership.Config{URL: srv.URL, BaseDN: srv.BaseDN, BindDN: dn, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	admin := dial(srv.AdminDN, srv.AdminPassword)
	if _, err := admin.Sync(ctx, []ownership.Server{{Node: "n1"}, {Node: "n2"}, {Node: "n3"}}); err != nil {
		t.Fatal(err)
	}
	pw, _ := srv.Password(srv.UserDN("alice"))
	alice := dial(srv.UserDN("alice"), pw)
	if err := alice.Checkout(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMember(ctx, "n1", srv.UserDN("carol")); err != nil {
		t.Fatal(err)
	}
	acts := &Activities{
		Ownership: LDAPOwnership{Config: ownership.Config{URL: srv.URL, BaseDN: srv.BaseDN, BindDN: srv.AdminDN, Password: srv.AdminPassword}},
		Log:       slog.New(slog.DiscardHandler),
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &ownerFixture{srv: srv, acts: acts, env: env}
}

func (f *ownerFixture) check(node, uid string) error {
	user := uid
	if !strings.ContainsAny(uid, "=, ") {
		user = f.srv.UserDN(uid)
	}
	_, err := f.env.ExecuteActivity(f.acts.CheckOwner, workflows.CheckOwnerInput{Node: node, User: user})
	return err
}

func (f *ownerFixture) owner(t *testing.T, node string) string {
	t.Helper()
	c, err := ownership.Dial(context.Background(), f.acts.Ownership.(LDAPOwnership).Config)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o, err := c.Owners(context.Background(), []string{node})
	if err != nil || len(o) != 1 {
		t.Fatalf("owners of %s = %v, %v", node, o, err)
	}
	return o[0].Owner
}

func TestCheckOwnerAgainstSlapd(t *testing.T) {
	f := newOwnerFixture(t)
	if err := f.check("n1", "alice"); err != nil {
		t.Errorf("owner alice: %v", err)
	}
	if err := f.check("n1", "carol"); err != nil {
		t.Errorf("member carol: %v", err)
	}
	err := f.check("n1", "bob")
	if !workflows.IsApplicationError(err, workflows.ErrNotOwner) {
		t.Fatalf("bob on alice's node: %v, want NotOwner", err)
	}
	for _, s := range []string{"n1", f.srv.UserDN("bob"), f.srv.UserDN("alice")} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("NotOwner error %q does not name %s", err, s)
		}
	}
	if err := f.check("n2", "alice"); !workflows.IsApplicationError(err, workflows.ErrNotOwner) || !strings.Contains(err.Error(), "no owner") {
		t.Errorf("alice on the free n2: %v, want NotOwner (no owner)", err)
	}
	// The placeholder member (the entry's own DN) is nobody.
	if err := f.check("n1", "cn=n1,"+f.srv.ServersDN); !workflows.IsApplicationError(err, workflows.ErrNotOwner) {
		t.Errorf("the placeholder member: %v, want NotOwner", err)
	}
	if err := f.check("n9", "alice"); !workflows.IsApplicationError(err, workflows.ErrUnknownNode) {
		t.Errorf("node without an entry: %v, want UnknownNode", err)
	}
	if err := f.check("n1", "not a dn"); !workflows.IsApplicationError(err, workflows.ErrInvalidUser) {
		t.Errorf("user %q: %v, want InvalidUser", "not a dn", err)
	}
	// Injection strings that parse as DNs are escaped in the filter and
	// match nobody.
	for _, user := range []string{"*)(owner=*", `uid=*)(owner=*,ou=people,dc=rackflow,dc=test`, `uid=alice\00,ou=people,dc=rackflow,dc=test`} {
		if err := f.check("n1", user); !workflows.IsApplicationError(err, workflows.ErrNotOwner) && !workflows.IsApplicationError(err, workflows.ErrInvalidUser) {
			t.Errorf("injection user %q: %v, want NotOwner or InvalidUser", user, err)
		}
	}
}

func TestCheckOwnerBadServiceAccount(t *testing.T) {
	f := newOwnerFixture(t)
	cfg := f.acts.Ownership.(LDAPOwnership).Config
	cfg.Password = "wrong"
	f.acts.Ownership = LDAPOwnership{Config: cfg}
	if err := f.check("n1", "alice"); !workflows.IsApplicationError(err, workflows.ErrOwnershipAuth) {
		t.Errorf("wrong service password: %v, want OwnershipAuth", err)
	}
}

func TestClearOwnerAgainstSlapd(t *testing.T) {
	f := newOwnerFixture(t)
	v, err := f.env.ExecuteActivity(f.acts.ClearOwner, workflows.ClearOwnerInput{Node: "n1", User: f.srv.UserDN("carol")})
	if err != nil {
		t.Fatal(err)
	}
	var prev string
	if err := v.Get(&prev); err != nil || prev != f.srv.UserDN("alice") {
		t.Errorf("previous owner = %q, %v; want alice", prev, err)
	}
	if o := f.owner(t, "n1"); o != "" {
		t.Errorf("owner of n1 after ClearOwner = %q, want free", o)
	}
	// Idempotent: a free node stays free.
	for _, node := range []string{"n1", "n2"} {
		if _, err := f.env.ExecuteActivity(f.acts.ClearOwner, workflows.ClearOwnerInput{Node: node}); err != nil {
			t.Errorf("ClearOwner of the free %s: %v", node, err)
		}
	}
	if _, err := f.env.ExecuteActivity(f.acts.ClearOwner, workflows.ClearOwnerInput{Node: "n9"}); !workflows.IsApplicationError(err, workflows.ErrUnknownNode) {
		t.Errorf("ClearOwner of a node without an entry: %v, want UnknownNode", err)
	}
}

// TestOwnershipNotConfigured: without a directory, a user is never let
// through and no owner is "cleared".
func TestOwnershipNotConfigured(t *testing.T) {
	acts := &Activities{Log: slog.New(slog.DiscardHandler)}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	_, err := env.ExecuteActivity(acts.CheckOwner, workflows.CheckOwnerInput{Node: "n1", User: "uid=alice,ou=people,dc=rackflow,dc=test"})
	if !workflows.IsApplicationError(err, workflows.ErrOwnershipNotConfigured) || !strings.Contains(err.Error(), "ownership is not configured") {
		t.Errorf("CheckOwner without a directory: %v, want OwnershipNotConfigured", err)
	}
	if _, err := env.ExecuteActivity(acts.ClearOwner, workflows.ClearOwnerInput{Node: "n1"}); !workflows.IsApplicationError(err, workflows.ErrOwnershipNotConfigured) {
		t.Errorf("ClearOwner without a directory: %v, want OwnershipNotConfigured", err)
	}
	if _, err := env.ExecuteActivity(acts.CheckOwner, workflows.CheckOwnerInput{Node: "n1"}); !workflows.IsApplicationError(err, workflows.ErrInvalidUser) {
		t.Errorf("CheckOwner without a user: %v, want InvalidUser", err)
	}
}
