package dev

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rackflow/rackflow/activities/ownership"
	devldap "github.com/rackflow/rackflow/dev/ldap"
)

// TestDevLDAP starts the embedded default with --ldap: every inventory node
// has a server entry, the users' password files work, and the directory
// enforces ownership (alice's checkout wins, bob's is refused).
func TestDevLDAP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := startLDAPEnv(ctx, t, 3)
	alice, bob := dialUser(ctx, t, env, "alice"), dialUser(ctx, t, env, "bob")
	owners, err := bob.Owners(ctx, nil)
	if err != nil || len(owners) != 3 {
		t.Fatalf("Owners = %v, %v; want the 3 inventory nodes", owners, err)
	}
	if err := alice.Checkout(ctx, "r01n01"); err != nil {
		t.Fatal(err)
	}
	if err := bob.Checkout(ctx, "r01n01"); !errors.Is(err, ownership.ErrOwned) {
		t.Fatalf("bob's checkout of alice's node = %v, want ErrOwned", err)
	}
}

// startLDAPEnv starts the embedded default with --ldap and nodes virtual
// nodes; it skips without OpenLDAP (fails under CI, which installs it).
func startLDAPEnv(ctx context.Context, t *testing.T, nodes int) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test")
	}
	if err := devldap.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	env, err := Start(ctx, Options{
		StateDir: t.TempDir(), Nodes: nodes, InMemory: true, Store: "dir", LDAP: true,
		FrontendAddr: "127.0.0.1:0", DHCPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		BMCPort: freePort(t), ImageSize: 1 << 20, CheckInTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	return env
}

// dialUser binds to env's directory as uid with the password file
// `rackflow dev --ldap` wrote.
func dialUser(ctx context.Context, t *testing.T, env *Env, uid string) *ownership.Client {
	t.Helper()
	dn := env.LDAP.UserDN(uid)
	pw, err := os.ReadFile(env.LDAPUsers()[dn])
	if err != nil {
		t.Fatal(err)
	}
	c, err := ownership.Dial(ctx, ownership.Config{URL: env.LDAP.URL, BaseDN: env.LDAP.BaseDN, BindDN: dn, Password: strings.TrimSpace(string(pw))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
