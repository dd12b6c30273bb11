package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/rackflow/rackflow/activities/inventory"
)

// TestWorkerLDAPBadUsage: the worker's ownership directory flags are
// checked before it contacts anything; the password never comes from a flag.
func TestWorkerLDAPBadUsage(t *testing.T) {
	t.Setenv(passwordEnv, "")
	dir := t.TempDir()
	inv, err := inventory.GenerateVirtual(1, 2, "127.0.0.1", 8443)
	if err != nil {
		t.Fatal(err)
	}
	data, err := inv.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	invFile, keyFile := filepath.Join(dir, "inv.yaml"), filepath.Join(dir, "key")
	if err := os.WriteFile(invFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, bytes.Repeat([]byte("k"), 32), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"rackflow", "worker", "--inventory", invFile, "--checkin-key", keyFile, "--http-base", "http://127.0.0.1:8880",
		"--image-dir", filepath.Join(dir, "images"), "--netboot-store", filepath.Join(dir, "store"), "--ldap-url", "ldap://127.0.0.1:1/", "--ldap-base", "dc=x"}
	for name, extra := range map[string][]string{
		"no bind dn":    nil,
		"no password":   {"--ldap-bind-dn", "uid=admin,dc=x"},
		"password flag": {"--ldap-bind-dn", "uid=admin,dc=x", "--ldap-password", "x"},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			a := app()
			a.Writer, a.ErrWriter = &out, &out
			err := a.Run(append(append([]string{}, base...), extra...))
			var exit cli.ExitCoder
			if !errors.As(err, &exit) || exit.ExitCode() != exitUsage {
				t.Fatalf("err = %v, want exit status %d\n%s", err, exitUsage, out.String())
			}
		})
	}
}
