package devldap

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// TestStartBindAndClose starts slapd, binds as every user, adds one, and
// checks that Close stops the process and removes the directory.
func TestStartBindAndClose(t *testing.T) {
	t0 := time.Now()
	s := StartTest(t, Options{})
	t.Logf("slapd ready on %s after %s", s.URL, time.Since(t0))
	if os.Geteuid() == 0 {
		st, err := os.Stat(fmt.Sprintf("/proc/%d", s.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid == 0 {
			t.Errorf("slapd runs as root, want an unprivileged user")
		}
	}
	dn, pw, err := s.AddUser(context.Background(), "dave")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddUser(context.Background(), "dave"); !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		t.Errorf("second AddUser: err = %v, want entry already exists", err)
	}
	tests := []struct {
		name, dn, pw string
		wantCode     uint16
	}{
		{"admin", s.AdminDN, s.AdminPassword, 0},
		{"alice", s.UserDN("alice"), must(s.Password(s.UserDN("alice"))), 0},
		{"added", dn, pw, 0},
		{"wrong password", s.UserDN("bob"), "nope", ldap.LDAPResultInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ldap.DialURL(s.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Bind(tt.dn, tt.pw)
			if tt.wantCode == 0 && err != nil || tt.wantCode != 0 && !ldap.IsErrorWithCode(err, tt.wantCode) {
				t.Fatalf("bind: %v, want code %d", err, tt.wantCode)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close: %v", s.Dir, err)
	}
	if _, err := ldap.DialURL(s.URL); err == nil {
		t.Errorf("slapd still answers on %s after Close", s.URL)
	}
}

// TestStartRejectsBadUser checks Options.Users validation before anything runs.
func TestStartRejectsBadUser(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	for _, uid := range []string{"admin", "Bad", "a,b", "x*"} {
		if s, err := Start(context.Background(), Options{Users: []string{uid}}); err == nil {
			s.Close()
			t.Errorf("Start with user %q: no error", uid)
		}
	}
}

func must(s string, ok bool) string {
	if !ok {
		panic("unknown user")
	}
	return s
}
