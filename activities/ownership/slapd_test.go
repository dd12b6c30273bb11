package ownership_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/rackflow/rackflow/activities/ownership"
	devldap "github.com/rackflow/rackflow/dev/ldap"
)

// rig is a throwaway slapd with server entries n1…n4 and a client per user.
type rig struct {
	t   *testing.T
	srv *devldap.Server
}

func newRig(t *testing.T, users ...string) *rig {
	t.Helper()
	if users == nil {
		users = devldap.DefaultUsers
	}
	r := &rig{t: t, srv: devldap.StartTest(t, devldap.Options{Users: users})}
	if _, err := r.client("admin").Sync(context.Background(), []ownership.Server{
		{Node: "n1"}, {Node: "n2"}, {Node: "n3"}, {Node: "n4", Description: "rack r01 slot 4"},
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) dn(uid string) string { return r.srv.UserDN(uid) }

func (r *rig) client(uid string) *ownership.Client {
	r.t.Helper()
	pw, _ := r.srv.Password(r.dn(uid))
	c, err := ownership.Dial(context.Background(), ownership.Config{URL: r.srv.URL, BaseDN: r.srv.BaseDN, BindDN: r.dn(uid), Password: pw})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	return c
}

func (r *rig) nodeDN(node string) string { return "cn=" + node + "," + r.srv.ServersDN }

// ldapmodify runs ldapmodify (ldap-utils) as uid ("" = anonymous) with the
// LDIF body applied to node's entry and returns its exit status, which is the
// LDAP result code. The password goes through a file (-y), never argv.
func (r *rig) ldapmodify(uid, node, body string, extra ...string) int {
	r.t.Helper()
	args := []string{"-x", "-H", r.srv.URL}
	if uid != "" {
		pw, _ := r.srv.Password(r.dn(uid))
		pwFile := filepath.Join(r.t.TempDir(), "pw")
		if err := os.WriteFile(pwFile, []byte(pw), 0o600); err != nil {
			r.t.Fatal(err)
		}
		args = append(args, "-D", r.dn(uid), "-y", pwFile)
	}
	cmd := exec.Command("ldapmodify", append(args, extra...)...)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("dn: %s\nchangetype: modify\n%s\n", r.nodeDN(node), body))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	r.t.Fatalf("ldapmodify: %v: %s", err, out)
	return -1
}

// entries returns every entry of the directory as LDIF-like text, read as the
// admin: a snapshot to prove an operation changed nothing.
func (r *rig) entries() string {
	r.t.Helper()
	c, err := ldap.DialURL(r.srv.URL)
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(r.srv.AdminDN, r.srv.AdminPassword); err != nil {
		r.t.Fatal(err)
	}
	res, err := c.Search(ldap.NewSearchRequest(r.srv.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"*"}, nil))
	if err != nil {
		r.t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range res.Entries {
		fmt.Fprintf(&b, "dn: %s\n", e.DN)
		for _, a := range e.Attributes {
			v := slices.Clone(a.Values)
			slices.Sort(v)
			fmt.Fprintf(&b, "%s: %q\n", a.Name, v)
		}
	}
	return b.String()
}

func (r *rig) owner(node string) ownership.Ownership {
	r.t.Helper()
	o, err := r.client("admin").Owners(context.Background(), []string{node})
	if err != nil || len(o) != 1 {
		r.t.Fatalf("owners %s: %v %v", node, o, err)
	}
	return o[0]
}

// TestDirectClientRules proves the paper's four rules hold for a direct LDAP
// client (ldapmodify), not only for this package. Steps run in order on one
// directory; each names who acts and the LDAP result code it must get.
func TestDirectClientRules(t *testing.T) {
	r := newRig(t)
	alice, bob := r.dn("alice"), r.dn("bob")
	assert := []string{"-e", "!assert=(!(owner=*))"}
	steps := []struct {
		name, who, node, body string
		extra                 []string
		want                  int
	}{
		// slapd refuses anonymous updates before the ACLs: 8 strongerAuthRequired.
		{"anonymous cannot check out", "", "n1", "add: owner\nowner: " + alice, nil, 8},
		{"anonymous cannot write a description", "", "n1", "replace: description\ndescription: x", nil, 8},
		{"non-owner cannot set another user as owner of a free node", "bob", "n1", "add: owner\nowner: " + alice, nil, 50},
		{"non-owner cannot edit members of a free node", "bob", "n1", "add: member\nmember: " + bob, nil, 50},
		{"alice checks out n1 with the assertion", "alice", "n1", "add: owner\nowner: " + alice, assert, 0},
		{"bob loses against the assertion", "bob", "n1", "add: owner\nowner: " + bob, assert, 122},
		{"bob cannot add himself without the assertion (ACL)", "bob", "n1", "add: owner\nowner: " + bob, nil, 50},
		{"bob cannot replace the owner", "bob", "n1", "replace: owner\nowner: " + bob, nil, 50},
		{"bob cannot delete alice as owner", "bob", "n1", "delete: owner\nowner: " + alice, nil, 50},
		{"bob cannot clear the owner", "bob", "n1", "delete: owner", nil, 50},
		{"bob cannot make himself a member", "bob", "n1", "add: member\nmember: " + bob, nil, 50},
		{"bob cannot write the description", "bob", "n1", "replace: description\ndescription: mine", nil, 50},
		{"owner cannot add a co-owner", "alice", "n1", "add: owner\nowner: " + bob, nil, 50},
		{"owner cannot hand over with replace", "alice", "n1", "replace: owner\nowner: " + bob, nil, 50},
		{"owner edits members", "alice", "n1", "add: member\nmember: " + bob, nil, 0},
		{"owner edits the description", "alice", "n1", "replace: description\ndescription: busy", nil, 0},
		{"a member cannot take ownership", "bob", "n1", "delete: owner\nowner: " + alice + "\n-\nadd: owner\nowner: " + bob, nil, 50},
		{"a member cannot edit members", "bob", "n1", "add: member\nmember: " + r.dn("carol"), nil, 50},
		{"owner releases by deleting their own value", "alice", "n1", "delete: owner\nowner: " + alice, nil, 0},
		{"a second release finds no value", "alice", "n1", "delete: owner\nowner: " + alice, nil, 16},
		{"admin sets any owner", "admin", "n2", "replace: owner\nowner: " + alice, nil, 0},
		{"admin edits members", "admin", "n2", "add: member\nmember: " + bob, nil, 0},
		{"admin clears the owner", "admin", "n2", "delete: owner", nil, 0},
	}
	for _, s := range steps {
		if got := r.ldapmodify(s.who, s.node, s.body, s.extra...); got != s.want {
			t.Errorf("%s: ldapmodify as %q exited %d, want %d", s.name, s.who, got, s.want)
		}
	}
	// Reading: users read owners; anonymous reads nothing.
	pw, _ := r.srv.Password(bob)
	out, err := exec.Command("ldapsearch", "-x", "-H", r.srv.URL, "-D", bob, "-w", pw, "-b", r.srv.ServersDN, "-LLL", "(owner=*)", "owner").CombinedOutput()
	if err != nil || strings.Count(string(out), "owner:") != 0 {
		t.Errorf("bob's search for owned servers (none left): %v\n%s", err, out)
	}
	out, _ = exec.Command("ldapsearch", "-x", "-H", r.srv.URL, "-b", r.srv.ServersDN, "-LLL", "(cn=*)").CombinedOutput()
	if strings.Contains(string(out), "dn: cn=") {
		t.Errorf("anonymous search returned server entries:\n%s", out)
	}
}

// TestCheckoutRace runs 8 concurrent checkouts of one node per round, 50
// rounds: exactly one winner per round, every loser gets ErrOwned naming the
// winner, and the entry holds exactly one owner.
func TestCheckoutRace(t *testing.T) {
	const racers, rounds = 8, 50
	users := make([]string, racers)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	r := newRig(t, users...)
	clients := make([]*ownership.Client, racers)
	for i, u := range users {
		clients[i] = r.client(u)
	}
	admin := r.client("admin")
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	t0 := time.Now()
	wins := map[int]int{}
	for round := 0; round < rounds; round++ {
		errs := make([]error, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, c := range clients {
			wg.Go(func() {
				<-start
				errs[i] = c.Checkout(ctx, "n1")
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: two winners: %s and %s", round, users[winner], users[i])
			case err == nil:
				winner = i
			case !errors.Is(err, ownership.ErrOwned):
				t.Fatalf("round %d: %s: %v, want ErrOwned", round, users[i], err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no winner: %v", round, errs)
		}
		wins[winner]++
		for i, err := range errs {
			var owned *ownership.OwnedError
			if i != winner && (!errors.As(err, &owned) || owned.Owner != r.dn(users[winner])) {
				t.Fatalf("round %d: loser %s: %v, want owned by %s", round, users[i], err, users[winner])
			}
		}
		res, err := admin.Owners(ctx, []string{"n1"})
		if err != nil || res[0].Owner != r.dn(users[winner]) {
			t.Fatalf("round %d: owners = %v, %v", round, res, err)
		}
		if err := clients[winner].Release(ctx, "n1"); err != nil {
			t.Fatalf("round %d: release: %v", round, err)
		}
	}
	t.Logf("%d rounds × %d racers: %d winners (one per round), per user %v, in %s", rounds, racers, rounds, wins, time.Since(t0))
}

// TestInjection tries hostile node names and user values: names are refused
// before any request, DN values are escaped in filters, and the directory is
// unchanged afterwards.
func TestInjection(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	alice, bob := r.client("alice"), r.client("bob")
	if err := alice.Checkout(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	before := r.entries()
	hostile := []string{"*)(cn=*", "*", "n1)(owner=*", "n1,ou=servers", "n1=x", "n1+cn=n2", "n1\x00", `n1\00`, "n1 ", "N1", "n1,cn=n2"}
	for _, n := range hostile {
		for name, op := range map[string]func() error{
			"checkout": func() error { return bob.Checkout(ctx, n) },
			"release":  func() error { return bob.Release(ctx, n) },
			"owners":   func() error { _, err := bob.Owners(ctx, []string{n}); return err },
			"operate":  func() error { _, err := bob.CanOperate(ctx, n, r.dn("bob")); return err },
			"member":   func() error { return bob.AddMember(ctx, n, r.dn("bob")) },
		} {
			if err := op(); !errors.Is(err, ownership.ErrInvalidNode) {
				t.Errorf("%s %q: %v, want ErrInvalidNode", name, n, err)
			}
		}
	}
	// User values are DNs: a hostile value either fails to parse or is
	// escaped and matches nothing.
	users := []string{
		"*", "uid=*", "uid=*)(owner=*", "uid=*)(|(owner=*", "uid=alice*,ou=people," + r.srv.BaseDN,
		"uid=al\\2aice,ou=people," + r.srv.BaseDN, "uid=x\x00,ou=people", "uid=a,b", "uid=a+cn=b,ou=people",
		"uid=a\\,ou=people," + r.srv.BaseDN, "=,=", "uid=alice,ou=people,dc=rackflow,dc=test)(cn=*",
	}
	for _, u := range users {
		ok, err := bob.CanOperate(ctx, "n1", u)
		if ok {
			t.Errorf("CanOperate(n1, %q) = true", u)
		}
		if err != nil && !errors.Is(err, ownership.ErrInvalidDN) {
			t.Errorf("CanOperate(n1, %q): %v", u, err)
		}
		if err := r.client("admin").Transfer(ctx, "n2", u); !errors.Is(err, ownership.ErrInvalidDN) && !errors.Is(err, ownership.ErrUnknownUser) {
			t.Errorf("Transfer(n2, %q): %v, want ErrInvalidDN or ErrUnknownUser", u, err)
		}
		if err := bob.AddMember(ctx, "n1", u); err == nil {
			t.Errorf("bob AddMember(n1, %q) succeeded", u)
		}
	}
	// Owners of a hostile list returns nothing wider than asked.
	if o, err := bob.Owners(ctx, []string{"n1"}); err != nil || len(o) != 1 || o[0].Node != "n1" {
		t.Errorf("Owners(n1) = %v, %v", o, err)
	}
	if after := r.entries(); after != before {
		t.Errorf("directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// A member value with commas, '=', '+' and a NUL is stored and matched
	// exactly, as one value, and widens nothing.
	weird := `cn=x\2a\29\28cn\3d\2a\2c\2b\00,ou=people,` + r.srv.BaseDN
	if err := alice.AddMember(ctx, "n1", weird); err != nil {
		t.Fatalf("AddMember(%q): %v", weird, err)
	}
	for _, u := range []string{weird, r.dn("bob"), "cn=x,ou=people," + r.srv.BaseDN} {
		ok, err := bob.CanOperate(ctx, "n1", u)
		if want := u == weird; ok != want || err != nil {
			t.Errorf("CanOperate(n1, %q) = %v, %v; want %v", u, ok, err, want)
		}
	}
	if o := r.owner("n1"); len(o.Members) != 1 {
		t.Errorf("members = %q, want the one weird value", o.Members)
	}
}

// TestCheckoutRelease covers the owner's path: idempotent checkout and
// release, the loser's error, NotOwner, members and CanOperate.
func TestCheckoutRelease(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	alice, bob, carol := r.client("alice"), r.client("bob"), r.client("carol")
	type step struct {
		name string
		do   func() error
		want error // nil, or a sentinel
	}
	steps := []step{
		{"alice checks out n1", func() error { return alice.Checkout(ctx, "n1") }, nil},
		{"again: idempotent", func() error { return alice.Checkout(ctx, "n1") }, nil},
		{"bob loses", func() error { return bob.Checkout(ctx, "n1") }, ownership.ErrOwned},
		{"bob cannot release", func() error { return bob.Release(ctx, "n1") }, ownership.ErrNotOwner},
		{"bob cannot force-release", func() error { _, err := bob.ForceRelease(ctx, "n1"); return err }, ownership.ErrDenied},
		{"bob cannot transfer", func() error { return bob.Transfer(ctx, "n1", r.dn("bob")) }, ownership.ErrDenied},
		{"bob cannot add himself as member", func() error { return bob.AddMember(ctx, "n1", r.dn("bob")) }, ownership.ErrDenied},
		{"alice adds bob", func() error { return alice.AddMember(ctx, "n1", r.dn("bob")) }, nil},
		{"again: idempotent", func() error { return alice.AddMember(ctx, "n1", r.dn("bob")) }, nil},
		{"unknown node", func() error { return alice.Checkout(ctx, "n9") }, ownership.ErrUnknownNode},
		{"unknown node release", func() error { return alice.Release(ctx, "n9") }, ownership.ErrUnknownNode},
		{"bob cannot sync", func() error { _, err := bob.Sync(ctx, []ownership.Server{{Node: "n9"}}); return err }, ownership.ErrDenied},
	}
	for _, s := range steps {
		if err := s.do(); s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
			t.Errorf("%s: %v, want %v", s.name, err, s.want)
		}
	}
	var owned *ownership.OwnedError
	if err := carol.Checkout(ctx, "n1"); !errors.As(err, &owned) || owned.Owner != r.dn("alice") ||
		!strings.Contains(err.Error(), "owned by "+r.dn("alice")) {
		t.Errorf("carol's checkout: %v, want owned by alice", err)
	}
	for _, c := range []struct {
		user string
		want bool
	}{{"alice", true}, {"bob", true}, {"carol", false}, {"admin", false}} {
		if ok, err := carol.CanOperate(ctx, "n1", r.dn(c.user)); ok != c.want || err != nil {
			t.Errorf("CanOperate(n1, %s) = %v, %v; want %v", c.user, ok, err, c.want)
		}
	}
	if ok, err := carol.CanOperate(ctx, "n1", r.nodeDN("n1")); ok || err != nil {
		t.Errorf("the placeholder member operates n1: %v %v", ok, err)
	}
	if got := r.owner("n1"); got.Owner != r.dn("alice") || !slices.Equal(got.Members, []string{r.dn("bob")}) {
		t.Errorf("owners n1 = %+v", got)
	}
	if err := alice.RemoveMember(ctx, "n1", r.dn("bob")); err != nil {
		t.Fatal(err)
	}
	if ok, _ := carol.CanOperate(ctx, "n1", r.dn("bob")); ok {
		t.Error("bob still operates n1 after RemoveMember")
	}
	for i := 0; i < 2; i++ { // the second release is a no-op
		if err := alice.Release(ctx, "n1"); err != nil {
			t.Fatalf("release %d: %v", i+1, err)
		}
	}
	if got := r.owner("n1"); got.Owner != "" {
		t.Errorf("n1 still owned: %+v", got)
	}
	if err := bob.Checkout(ctx, "n1"); err != nil {
		t.Errorf("bob checks out the released n1: %v", err)
	}
}

// TestAdminOverride covers ForceRelease and Transfer.
func TestAdminOverride(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	admin, alice, bob := r.client("admin"), r.client("alice"), r.client("bob")
	if err := alice.Checkout(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Transfer(ctx, "n1", r.dn("bob")); err != nil {
		t.Fatal(err)
	}
	if got := r.owner("n1").Owner; got != r.dn("bob") {
		t.Errorf("after transfer owner = %q", got)
	}
	if err := alice.Release(ctx, "n1"); !errors.Is(err, ownership.ErrNotOwner) {
		t.Errorf("alice releases the transferred node: %v", err)
	}
	if err := admin.Transfer(ctx, "n1", "uid=nobody,ou=people,"+r.srv.BaseDN); !errors.Is(err, ownership.ErrUnknownUser) {
		t.Errorf("transfer to a non-existent user: %v", err)
	}
	prev, err := admin.ForceRelease(ctx, "n1")
	if err != nil || prev != r.dn("bob") {
		t.Errorf("force-release = %q, %v; want bob", prev, err)
	}
	if prev, err := admin.ForceRelease(ctx, "n1"); err != nil || prev != "" {
		t.Errorf("second force-release = %q, %v; want free", prev, err)
	}
	if err := bob.Release(ctx, "n1"); err != nil {
		t.Errorf("bob releases the force-released node: %v", err)
	}
	if err := admin.Transfer(ctx, "n2", r.dn("alice")); err != nil {
		t.Errorf("transfer of a free node: %v", err)
	}
	if err := alice.Release(ctx, "n2"); err != nil {
		t.Errorf("alice releases the node given to her: %v", err)
	}
}

// TestSyncOwners covers Sync's create/update/unchanged and Owners' listing.
func TestSyncOwners(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	admin := r.client("admin")
	res, err := admin.Sync(ctx, []ownership.Server{{Node: "n1"}, {Node: "n4", Description: "rack r01 slot 5"}, {Node: "n5"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Created, []string{"n5"}) || !slices.Equal(res.Updated, []string{"n4"}) || !slices.Equal(res.Unchanged, []string{"n1"}) {
		t.Errorf("sync = %+v", res)
	}
	if _, err := admin.Sync(ctx, []ownership.Server{{Node: "ok"}, {Node: "*"}}); !errors.Is(err, ownership.ErrInvalidNode) {
		t.Errorf("sync with a bad name: %v", err)
	}
	alice := r.client("alice")
	if err := alice.Checkout(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	all, err := alice.Owners(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, o := range all {
		nodes = append(nodes, o.Node)
		if (o.Owner != "") != (o.Node == "n3") || len(o.Members) != 0 {
			t.Errorf("owners: %+v", o)
		}
	}
	if !slices.Equal(nodes, []string{"n1", "n2", "n3", "n4", "n5"}) {
		t.Errorf("owners lists %v", nodes)
	}
	some, err := alice.Owners(ctx, []string{"n3", "n9", "n1"})
	if !errors.Is(err, ownership.ErrUnknownNode) || !strings.Contains(err.Error(), "n9") || len(some) != 2 {
		t.Errorf("owners with an unknown node: %v, %v", some, err)
	}
}

// TestDial covers bad credentials and the password staying out of logs.
func TestDial(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	tests := []struct {
		name string
		cfg  ownership.Config
		want error
	}{
		{"wrong password", ownership.Config{URL: r.srv.URL, BaseDN: r.srv.BaseDN, BindDN: r.dn("alice"), Password: "wrong"}, ownership.ErrBadCredentials},
		{"empty password", ownership.Config{URL: r.srv.URL, BaseDN: r.srv.BaseDN, BindDN: r.dn("alice")}, ownership.ErrBadCredentials},
		{"unknown user", ownership.Config{URL: r.srv.URL, BaseDN: r.srv.BaseDN, BindDN: r.dn("zed"), Password: "x"}, ownership.ErrBadCredentials},
		{"bad bind DN", ownership.Config{URL: r.srv.URL, BaseDN: r.srv.BaseDN, BindDN: "alice", Password: "x"}, ownership.ErrInvalidDN},
		{"bad base DN", ownership.Config{URL: r.srv.URL, BaseDN: "", BindDN: r.dn("alice"), Password: "x"}, ownership.ErrInvalidDN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ownership.Dial(ctx, tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Dial: %v, want %v", err, tt.want)
			}
			if c != nil {
				c.Close()
			}
			if tt.cfg.Password != "" && strings.Contains(err.Error(), tt.cfg.Password) && len(tt.cfg.Password) > 1 {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	cfg := ownership.Config{URL: r.srv.URL, BaseDN: r.srv.BaseDN, BindDN: r.dn("alice"), Password: "s3cret-value"}
	var b strings.Builder
	fmt.Fprint(&b, cfg, " ")
	fmt.Fprintf(&b, "%v %s %+v %#v ", cfg, cfg, cfg, cfg)
	slog.New(slog.NewTextHandler(&b, nil)).Info("dial", "cfg", cfg)
	if strings.Contains(b.String(), "s3cret-value") {
		t.Errorf("Config prints its password: %s", b.String())
	}
}
