//go:build !unix

package devtemporal

// lockStateDir does nothing where flock is unavailable: the caller must not
// run two servers on one state dir.
func lockStateDir(string) (func() error, error) {
	return func() error { return nil }, nil
}
