package ownership

import (
	"errors"
	"testing"
)

// TestNodeDN checks name validation: every injection attempt is refused
// before a DN is built.
func TestNodeDN(t *testing.T) {
	tests := []struct {
		node, want string
		ok         bool
	}{
		{"r01n01", "cn=r01n01,ou=servers,dc=x", true},
		{"a.b-c_d", "cn=a.b-c_d,ou=servers,dc=x", true},
		{"0", "cn=0,ou=servers,dc=x", true},
		{"", "", false},
		{"R01", "", false},
		{"-x", "", false},
		{"*)(cn=*", "", false},
		{"*", "", false},
		{"a,ou=people", "", false},
		{"a=b", "", false},
		{"a+uid=x", "", false},
		{"a\x00", "", false},
		{`a\2a`, "", false},
		{"a b", "", false},
		{"a\u00e9", "", false},
		{"a\n", "", false},
		{"a123456789012345678901234567890123456789012345678901234567890123", "", false}, // 64
	}
	for _, tt := range tests {
		got, err := NodeDN("dc=x", tt.node)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("NodeDN(%q) = %q, %v; want %q", tt.node, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidNode) {
			t.Errorf("NodeDN(%q) = %q, %v; want ErrInvalidNode", tt.node, got, err)
		}
	}
}

// TestFiltersEscape checks that user-supplied values cannot change the shape
// of a filter.
func TestFiltersEscape(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"nodes nil", nodesFilter(nil), "(objectClass=groupOfNames)"},
		{"nodes", nodesFilter([]string{"a", "b"}), "(&(objectClass=groupOfNames)(|(cn=a)(cn=b)))"},
		{"nodes injection", nodesFilter([]string{"*)(cn=*"}), `(&(objectClass=groupOfNames)(|(cn=\2a\29\28cn=\2a)))`},
		{"operator", operatorFilter("uid=a,dc=x"), "(|(owner=uid=a,dc=x)(member=uid=a,dc=x))"},
		{"operator injection", operatorFilter("uid=*)(owner=*"), `(|(owner=uid=\2a\29\28owner=\2a)(member=uid=\2a\29\28owner=\2a))`},
		{"operator nul", operatorFilter("uid=a\x00"), `(|(owner=uid=a\00)(member=uid=a\00))`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}

func TestSameDN(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"uid=a,dc=x", "UID=a, DC=x", true},
		{"uid=a,dc=x", "uid=A,dc=x", true},
		{"uid=a,dc=x", "uid=b,dc=x", false},
		{"uid=a\\,b,dc=x", "uid=a,dc=x", false},
	}
	for _, tt := range tests {
		if got := sameDN(tt.a, tt.b); got != tt.want {
			t.Errorf("sameDN(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}
