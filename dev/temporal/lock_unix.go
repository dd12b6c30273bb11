//go:build unix

package devtemporal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFileName is held (flock) by the server using a state dir.
const lockFileName = "temporal.lock"

// lockStateDir takes an exclusive, non-blocking flock on
// <dir>/temporal.lock so that two servers never share one database (they
// would fight over the history shard). The lock goes with the process if it
// dies; release drops it.
func lockStateDir(dir string) (release func() error, err error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("devtemporal: opening %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("devtemporal: state dir %s is in use by another Temporal server (%s is locked)", dir, path)
		}
		return nil, fmt.Errorf("devtemporal: locking %s: %w", path, err)
	}
	return f.Close, nil
}
