package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/activities/ownership"
	devldap "github.com/rackflow/rackflow/dev/ldap"
)

// TestOwnershipBadUsageExits2 runs the ownership commands with bad flags and
// arguments: each prints usage and exits 2 before contacting the directory.
func TestOwnershipBadUsageExits2(t *testing.T) {
	t.Setenv(passwordEnv, "")
	conn := []string{"--ldap-url", "ldap://127.0.0.1:1/", "--ldap-base", "dc=x", "--ldap-bind-dn", "uid=a,dc=x"}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	tests := []struct {
		name string
		args []string
	}{
		{"checkout no nodes", []string{"rackflow", "checkout"}},
		{"checkout bad node", []string{"rackflow", "checkout", "Bad;Name"}},
		{"checkout injection", []string{"rackflow", "checkout", "*)(cn=*"}},
		{"checkout comma", []string{"rackflow", "checkout", "n1,ou=people"}},
		{"checkout no url", []string{"rackflow", "checkout", "n1"}},
		{"checkout no password", cat([]string{"rackflow", "checkout"}, conn, []string{"n1"})},
		{"checkout password flag", cat([]string{"rackflow", "checkout", "--ldap-password", "x"}, conn, []string{"n1"})},
		{"checkout trailing unknown flag", []string{"rackflow", "checkout", "n1", "--bogus"}},
		{"release no nodes", []string{"rackflow", "release", "--force"}},
		{"release bad bool", []string{"rackflow", "release", "n1", "--force=maybe"}},
		{"release bad node", []string{"rackflow", "release", "n1", "../x"}},
		{"release bad policy", []string{"rackflow", "release", "--policy", "reboot", "n1"}},
		{"release no nodes (workflow)", []string{"rackflow", "release"}},
		{"checkout --for zero", cat([]string{"rackflow", "checkout", "--for", "0s"}, conn, []string{"n1"})},
		{"checkout --for negative", cat([]string{"rackflow", "checkout", "--for", "-1h"}, conn, []string{"n1"})},
		{"checkout --for not a duration", cat([]string{"rackflow", "checkout", "--for", "8"}, conn, []string{"n1"})},
		{"owners bad node", []string{"rackflow", "owners", "n1\x00"}},
		{"owners no bind dn", []string{"rackflow", "owners", "--ldap-url", "ldap://x/", "--ldap-base", "dc=x"}},
		{"ldap unknown", []string{"rackflow", "ldap", "bogus"}},
		{"ldap sync no inventory", cat([]string{"rackflow", "ldap", "sync"}, conn)},
		{"ldap sync argument", cat([]string{"rackflow", "ldap", "sync", "--inventory", "x.yaml"}, conn, []string{"extra"})},
		{"ldap sync unknown flag", []string{"rackflow", "ldap", "sync", "--bogus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectUsageError(t, tt.args) })
	}
}

// TestOwnershipCLI drives sync, checkout, owners and release through the CLI
// against a throwaway slapd: the admin syncs the inventory, alice checks out,
// bob loses with "owned by", the admin force-releases.
func TestOwnershipCLI(t *testing.T) {
	srv := devldap.StartTest(t, devldap.Options{})
	inv, err := inventory.GenerateVirtual(1, 3, "127.0.0.1", 6230)
	if err != nil {
		t.Fatal(err)
	}
	data, err := inv.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	invFile := filepath.Join(dir, "inventory.yaml")
	adminPW := filepath.Join(dir, "admin.pw")
	if err := os.WriteFile(invFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(adminPW, []byte(srv.AdminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RACKFLOW_LDAP_URL", srv.URL)
	t.Setenv("RACKFLOW_LDAP_BASE", srv.BaseDN)
	run := func(user string, args ...string) (string, int) {
		t.Helper()
		pw, _ := srv.Password(srv.UserDN(user))
		t.Setenv(passwordEnv, pw)
		t.Setenv("RACKFLOW_LDAP_BIND_DN", srv.UserDN(user))
		var out bytes.Buffer
		a := app()
		a.Writer, a.ErrWriter = &out, &out
		err := a.Run(append([]string{"rackflow"}, args...))
		code := 0
		var exit cli.ExitCoder
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			code = 1
			out.WriteString(err.Error())
		}
		return out.String(), code
	}
	steps := []struct {
		user     string
		args     []string
		wantCode int
		want     string
	}{
		{"bob", []string{"ldap", "sync", "--inventory", invFile}, 1, "permission denied"},
		{"alice", []string{"ldap", "sync", "--inventory", invFile, "--ldap-password-file", adminPW, "--ldap-bind-dn", srv.AdminDN}, 0, "3 created, 0 updated, 0 unchanged"},
		{"alice", []string{"ldap", "sync", "--inventory", invFile, "--ldap-password-file", adminPW, "--ldap-bind-dn", srv.AdminDN}, 0, "0 created, 0 updated, 3 unchanged"},
		{"alice", []string{"checkout", "r01n01", "r01n02"}, 0, "r01n02: checked out by " + srv.UserDN("alice")},
		{"bob", []string{"checkout", "r01n02", "r01n03"}, 1, "r01n02: checkout: node r01n02 is owned by " + srv.UserDN("alice")},
		{"bob", []string{"release", "--owner-only", "r01n01"}, 1, "is owned by " + srv.UserDN("alice") + ", not by you"},
		{"bob", []string{"release", "r01n01", "--force"}, 1, "permission denied"},
		{"carol", []string{"owners"}, 0, "r01n03  " + srv.UserDN("bob")},
		{"carol", []string{"owners", "r01n09"}, 1, "unknown node"},
		{"alice", []string{"release", "--owner-only", "r01n01"}, 0, "r01n01: released"},
		{"alice", []string{"release", "--owner-only", "r01n01"}, 0, "r01n01: released"},
		{"alice", []string{"release", "r01n02", "--force", "--ldap-password-file", adminPW, "--ldap-bind-dn", srv.AdminDN}, 0, "r01n02: released (was owned by " + srv.UserDN("alice") + ")"},
		{"alice", []string{"checkout", "r01n01", "--ldap-bind-dn", srv.UserDN("alice"), "--ldap-password-file", adminPW}, 1, "invalid LDAP credentials"},
	}
	for _, s := range steps {
		out, code := run(s.user, s.args...)
		if code != s.wantCode || !strings.Contains(out, s.want) {
			t.Errorf("%s %q: exit %d, want %d with %q:\n%s", s.user, s.args, code, s.wantCode, s.want, out)
		}
		if pw, _ := srv.Password(srv.UserDN(s.user)); strings.Contains(out, pw) || strings.Contains(out, srv.AdminPassword) {
			t.Errorf("%s %q: output shows a password:\n%s", s.user, s.args, out)
		}
	}
	out, code := run("carol", "--json", "owners")
	var got []ownership.Ownership
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("owners --json: exit %d, %v:\n%s", code, err, out)
	}
	want := []ownership.Ownership{{Node: "r01n01"}, {Node: "r01n02"}, {Node: "r01n03", Owner: srv.UserDN("bob")}}
	if !slices.EqualFunc(got, want, func(a, b ownership.Ownership) bool { return a.Node == b.Node && a.Owner == b.Owner }) {
		t.Errorf("owners --json = %+v, want %+v", got, want)
	}
}
