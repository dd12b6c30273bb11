package ownership

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

var nodeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// ValidNode reports whether s is a valid node name: [a-z0-9][a-z0-9._-]*,
// at most 63 characters (the inventory's rule).
func ValidNode(s string) bool { return len(s) <= 63 && nodeRE.MatchString(s) }

// ServersDN returns "ou=servers,<base>".
func ServersDN(base string) string { return "ou=servers," + base }

// NodeDN returns "cn=<node>,ou=servers,<base>" with node escaped (RFC 4514),
// or an error wrapping ErrInvalidNode. Valid names need no escaping; the
// escape is a second wall.
func NodeDN(base, node string) (string, error) {
	if !ValidNode(node) {
		return "", fmt.Errorf("%q: %w ([a-z0-9][a-z0-9._-]*, at most 63 characters)", node, ErrInvalidNode)
	}
	return "cn=" + ldap.EscapeDN(node) + "," + ServersDN(base), nil
}

// nodesFilter returns a filter matching the server entries of nodes:
// (&(objectClass=groupOfNames)(|(cn=a)(cn=b)…)), every name escaped
// (RFC 4515). Nil nodes match every server entry.
func nodesFilter(nodes []string) string {
	if len(nodes) == 0 {
		return "(objectClass=groupOfNames)"
	}
	var b strings.Builder
	b.WriteString("(&(objectClass=groupOfNames)(|")
	for _, n := range nodes {
		b.WriteString("(cn=" + ldap.EscapeFilter(n) + ")")
	}
	b.WriteString("))")
	return b.String()
}

// operatorFilter returns (|(owner=<dn>)(member=<dn>)) with dn escaped.
func operatorFilter(userDN string) string {
	e := ldap.EscapeFilter(userDN)
	return "(|(owner=" + e + ")(member=" + e + "))"
}

// checkDN parses dn and returns an error wrapping ErrInvalidDN when it does
// not parse or is empty.
func checkDN(dn string) (*ldap.DN, error) {
	p, err := ldap.ParseDN(dn)
	if err != nil || len(p.RDNs) == 0 {
		return nil, fmt.Errorf("%q: %w", dn, ErrInvalidDN)
	}
	return p, nil
}

// sameDN compares two DNs as the directory does (case-insensitive attribute
// types and values); unparsable DNs compare as raw strings.
func sameDN(a, b string) bool {
	pa, errA := ldap.ParseDN(a)
	pb, errB := ldap.ParseDN(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return pa.EqualFold(pb)
}
