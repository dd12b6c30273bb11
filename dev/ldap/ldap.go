// Package devldap runs a throwaway OpenLDAP slapd for tests and the dev rig:
// cn=config with the HOP-SCOTCH ownership ACLs (paper §3.3, the four rules in
// order), a suffix with ou=people (an admin and a few users) and an empty
// ou=servers, listening on a free 127.0.0.1 port, in a temporary directory
// that Close removes. Production packages never import it.
package devldap

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// BaseDN is the suffix of every throwaway directory.
const BaseDN = "dc=rackflow,dc=test"

// Packages are the Debian packages that provide the binaries this package runs.
var Packages = []string{"slapd", "ldap-utils"}

// Binaries are the programs Start needs (slapd and slapadd from slapd,
// ldapmodify from ldap-utils, which the tests use as a direct client).
var Binaries = []string{"slapd", "slapadd", "ldapmodify"}

// ErrNotInstalled is returned (wrapped) by Start and Available when a binary
// is missing; the message names the Debian packages to install.
var ErrNotInstalled = errors.New("OpenLDAP is not installed")

// DefaultUsers are the users Start creates when Options.Users is nil.
var DefaultUsers = []string{"alice", "bob", "carol"}

var (
	//go:embed config.ldif.tmpl
	configTmplText string
	//go:embed data.ldif.tmpl
	dataTmplText string

	configTmpl = template.Must(template.New("config").Parse(configTmplText))
	dataTmpl   = template.Must(template.New("data").Parse(dataTmplText))

	uidRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,31}$`)
)

// Options configure Start. The zero value is usable.
type Options struct {
	// Users are the uids created in ou=people besides the admin, each with a
	// random password (Server.Password). Nil means DefaultUsers.
	Users []string
	// RunAs is the unprivileged user slapd runs as when Start is called as
	// root (default "nobody", with that user's primary group).
	RunAs string
	// StartTimeout bounds the wait for slapd to answer (default 10 s).
	StartTimeout time.Duration
}

// Server is a running throwaway slapd. Its fields are read-only.
type Server struct {
	URL           string // ldap://127.0.0.1:<port>/
	BaseDN        string // BaseDN
	PeopleDN      string // ou=people,<base>
	ServersDN     string // ou=servers,<base>
	AdminDN       string // uid=admin,ou=people,<base>, the root DN (bypasses ACLs)
	AdminPassword string
	Dir           string // temporary directory: slapd.d, db, pid file

	mu        sync.Mutex
	passwords map[string]string // DN → password
	cmd       *exec.Cmd
	done      chan struct{} // closed when slapd has exited
	stderr    *lockedBuffer
	closed    bool
}

// Available reports whether the binaries Start needs are installed, as an
// error wrapping ErrNotInstalled that names the Debian packages.
func Available() error {
	var missing []string
	for _, b := range Binaries {
		if _, err := lookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s not found (install the Debian packages %s: apt-get install %s)",
			ErrNotInstalled, strings.Join(missing, ", "), strings.Join(Packages, " and "), strings.Join(Packages, " "))
	}
	return nil
}

// lookPath finds a binary on PATH or in /usr/sbin and /sbin, where Debian
// puts slapd and slapadd (often not on a non-root PATH).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

type tmplUser struct{ UID, DN, Password string }

// Start creates the directory, loads cn=config and the base entries with
// slapadd, starts slapd on a free loopback port (as Options.RunAs when
// running as root) and returns once it answers a bind as the admin. Errors:
// ErrNotInstalled (wrapped) when a binary is missing; otherwise the failing
// step with slapd's output.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if opts.Users == nil {
		opts.Users = DefaultUsers
	}
	if opts.RunAs == "" {
		opts.RunAs = "nobody"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 10 * time.Second
	}
	dir, err := os.MkdirTemp("", "rackflow-slapd-")
	if err != nil {
		return nil, fmt.Errorf("devldap: %w", err)
	}
	s := &Server{
		BaseDN:        BaseDN,
		PeopleDN:      "ou=people," + BaseDN,
		ServersDN:     "ou=servers," + BaseDN,
		Dir:           dir,
		AdminPassword: randomPassword(),
		passwords:     map[string]string{},
		stderr:        &lockedBuffer{},
	}
	s.AdminDN = s.UserDN("admin")
	users := []tmplUser{{UID: "admin", DN: s.AdminDN, Password: s.AdminPassword}}
	for _, uid := range opts.Users {
		if !uidRE.MatchString(uid) || uid == "admin" {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("devldap: user %q: want [a-z][a-z0-9]{0,31}, not admin", uid)
		}
		users = append(users, tmplUser{UID: uid, DN: s.UserDN(uid), Password: randomPassword()})
	}
	for _, u := range users {
		s.passwords[u.DN] = u.Password
	}
	if err := s.start(ctx, opts, users); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, opts Options, users []tmplUser) error {
	data := map[string]any{
		"Dir": s.Dir, "ModulePath": "/usr/lib/ldap", "SchemaDir": "/etc/ldap/schema",
		"BaseDN": s.BaseDN, "DC": "rackflow", "PeopleDN": s.PeopleDN, "ServersDN": s.ServersDN,
		"AdminDN": s.AdminDN, "AdminPassword": s.AdminPassword, "Users": users,
	}
	for _, d := range []string{"slapd.d", "db"} {
		if err := os.Mkdir(filepath.Join(s.Dir, d), 0o700); err != nil {
			return fmt.Errorf("devldap: %w", err)
		}
	}
	for _, f := range []struct {
		tmpl *template.Template
		name string
		db   string
	}{{configTmpl, "config.ldif", "0"}, {dataTmpl, "data.ldif", "1"}} {
		var buf bytes.Buffer
		if err := f.tmpl.Execute(&buf, data); err != nil {
			return fmt.Errorf("devldap: %s: %w", f.name, err)
		}
		path := filepath.Join(s.Dir, f.name)
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			return fmt.Errorf("devldap: %w", err)
		}
		slapadd, _ := lookPath("slapadd")
		out, err := exec.CommandContext(ctx, slapadd, "-q", "-n"+f.db, "-F", filepath.Join(s.Dir, "slapd.d"), "-l", path).CombinedOutput()
		if err != nil {
			return fmt.Errorf("devldap: slapadd -n%s %s: %w: %s", f.db, f.name, err, bytes.TrimSpace(out))
		}
	}
	var runArgs []string
	if os.Geteuid() == 0 {
		uid, gid, group, err := lookupUser(opts.RunAs)
		if err != nil {
			return err
		}
		if err := chownTree(s.Dir, uid, gid); err != nil {
			return err
		}
		runArgs = []string{"-u", opts.RunAs, "-g", group}
	}
	// The free port is picked by binding and releasing it; another process
	// may grab it in between, so a failed start is retried on a new port.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.URL = fmt.Sprintf("ldap://127.0.0.1:%d/", port)
		if lastErr = s.run(ctx, runArgs, opts.StartTimeout); lastErr == nil {
			return nil
		}
	}
	return lastErr
}

// run starts slapd in the foreground (-d 0) and waits until the admin can bind.
func (s *Server) run(ctx context.Context, runArgs []string, timeout time.Duration) error {
	slapd, _ := lookPath("slapd")
	args := append([]string{"-d", "0", "-h", s.URL, "-F", filepath.Join(s.Dir, "slapd.d")}, runArgs...)
	cmd := exec.Command(slapd, args...)
	s.stderr.Reset()
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("devldap: start slapd: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(timeout)
	for {
		err := s.ping()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("devldap: slapd exited: %s", strings.TrimSpace(s.stderr.String()))
		case <-ctx.Done():
			s.stop()
			return fmt.Errorf("devldap: waiting for slapd: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("devldap: slapd did not answer on %s within %s: %v: %s", s.URL, timeout, err, strings.TrimSpace(s.stderr.String()))
		}
	}
}

func (s *Server) ping() error {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(time.Second)
	return c.Bind(s.AdminDN, s.AdminPassword)
}

// UserDN returns the DN of uid in ou=people (uid is not escaped: pass only
// uids created by Start or AddUser).
func (s *Server) UserDN(uid string) string { return "uid=" + uid + "," + s.PeopleDN }

// Password returns the password of a user created by Start or AddUser, by DN
// (the admin included), and false for an unknown DN.
func (s *Server) Password(dn string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pw, ok := s.passwords[dn]
	return pw, ok
}

// AddUser creates uid=<uid>,ou=people,<base> (inetOrgPerson) with a random
// password, as the admin, and returns its DN and password. Errors: an invalid
// uid ([a-z][a-z0-9]{0,31}), or the LDAP error (already exists: code 68).
func (s *Server) AddUser(ctx context.Context, uid string) (dn, password string, err error) {
	if !uidRE.MatchString(uid) {
		return "", "", fmt.Errorf("devldap: user %q: want [a-z][a-z0-9]{0,31}", uid)
	}
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		return "", "", fmt.Errorf("devldap: %w", err)
	}
	defer c.Close()
	if err := c.Bind(s.AdminDN, s.AdminPassword); err != nil {
		return "", "", fmt.Errorf("devldap: bind as admin: %w", err)
	}
	dn, password = s.UserDN(uid), randomPassword()
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"inetOrgPerson"})
	req.Attribute("uid", []string{uid})
	req.Attribute("cn", []string{uid})
	req.Attribute("sn", []string{uid})
	req.Attribute("userPassword", []string{password})
	if err := c.Add(req); err != nil {
		return "", "", fmt.Errorf("devldap: add %s: %w", dn, err)
	}
	s.mu.Lock()
	s.passwords[dn] = password
	s.mu.Unlock()
	return dn, password, nil
}

// Close stops slapd (SIGTERM, then SIGKILL after 5 s) and removes the
// directory. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	return os.RemoveAll(s.Dir)
}

func (s *Server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func lookupUser(name string) (uid, gid int, group string, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, "", fmt.Errorf("devldap: slapd must not run as root: %w", err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return 0, 0, "", fmt.Errorf("devldap: group of %s: %w", name, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, g.Name, nil
}

func chownTree(root string, uid, gid int) error {
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("devldap: %w", err)
		}
		return nil
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devldap: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lockedBuffer collects slapd's output for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}
