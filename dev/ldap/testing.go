package devldap

import (
	"context"
	"errors"
	"os"
	"testing"
)

// StartTest starts a throwaway slapd for a test and stops it when the test
// ends. Without OpenLDAP the test is skipped with the install hint — or fails
// when the environment variable CI is set, because CI installs it.
func StartTest(t testing.TB, opts Options) *Server {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	s, err := Start(context.Background(), opts)
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") == "" {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
