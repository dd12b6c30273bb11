package dev

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rackflow/rackflow/activities/ownership"
	devldap "github.com/rackflow/rackflow/dev/ldap"
)

// startLDAP starts the throwaway directory of `rackflow dev --ldap`, adds a
// server entry for every inventory node (as the admin) and writes each
// user's password to <state>/ldap/<uid>.pw (mode 0600) for the CLI's
// --ldap-password-file.
func (e *Env) startLDAP(ctx context.Context) error {
	srv, err := devldap.Start(ctx, devldap.Options{})
	if err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	e.LDAP = srv
	admin, err := ownership.Dial(ctx, ownership.Config{URL: srv.URL, BaseDN: srv.BaseDN, BindDN: srv.AdminDN, Password: srv.AdminPassword})
	if err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	defer admin.Close()
	servers := make([]ownership.Server, 0, len(e.Inventory.Nodes))
	for _, n := range e.Inventory.Nodes {
		servers = append(servers, ownership.Server{Node: n.Name, Description: fmt.Sprintf("rack %s slot %d", n.Rack, n.Slot)})
	}
	if _, err := admin.Sync(ctx, servers); err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	dir := filepath.Join(e.opts.StateDir, "ldap")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	e.ldapUsers = map[string]string{}
	passwords := map[string]string{srv.AdminDN: srv.AdminPassword}
	for _, uid := range devldap.DefaultUsers {
		if pw, ok := srv.Password(srv.UserDN(uid)); ok {
			passwords[srv.UserDN(uid)] = pw
		}
	}
	for dn, pw := range passwords {
		file := filepath.Join(dir, strings.TrimPrefix(strings.SplitN(dn, ",", 2)[0], "uid=")+".pw")
		if err := writeFileAtomic(file, []byte(pw+"\n"), 0o600); err != nil {
			return err
		}
		e.ldapUsers[dn] = file
	}
	return nil
}

// LDAPUsers maps each user DN of `rackflow dev --ldap`'s directory to the
// file holding its password (the admin's included).
func (e *Env) LDAPUsers() map[string]string { return e.ldapUsers }
