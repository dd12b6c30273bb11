package zfsfuse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Paths of the zfs-fuse installation (Debian package zfs-fuse).
const (
	daemonPath = "/usr/sbin/zfs-fuse"
	pidFile    = "/run/zfs-fuse.pid" // the same file the package's init script uses
)

// cmdTimeout bounds one zfs/zpool command when the caller's context has no
// earlier deadline.
const cmdTimeout = 2 * time.Minute

// ErrNotInstalled is returned by [Ensure] and [EnsureDaemon] when zfs-fuse,
// or its zfs and zpool commands, are missing.
var ErrNotInstalled = errors.New("zfs-fuse is not installed (apt-get install zfs-fuse)")

// CommandError is a zfs or zpool command that exited non-zero.
type CommandError struct {
	Args   []string // the command line, binary first
	Stderr string   // trimmed standard error
	Err    error    // the *exec.ExitError or start error
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Args, " "), e.Err, e.Stderr)
}

func (e *CommandError) Unwrap() error { return e.Err }

// Installed reports whether the zfs-fuse daemon and the zfs and zpool
// commands are present on this machine. It does not start anything.
func Installed() bool {
	if _, err := os.Stat(daemonPath); err != nil {
		return false
	}
	_, errZFS := realBinary("zfs", "")
	_, errZpool := realBinary("zpool", "")
	return errZFS == nil && errZpool == nil
}

// realBinary finds the real zfs or zpool command, skipping skipDir (the shim
// directory) on PATH, and falling back to /usr/sbin and /sbin, which are not
// on an unprivileged user's PATH.
func realBinary(name, skipDir string) (string, error) {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if d != "" && filepath.Clean(d) != filepath.Clean(skipDir) {
			dirs = append(dirs, d)
		}
	}
	dirs = append(dirs, "/usr/sbin", "/sbin")
	for _, d := range dirs {
		p := filepath.Join(d, name)
		st, err := os.Stat(p)
		if err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			if skipDir != "" && isShim(p) {
				continue
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, ErrNotInstalled)
}

// run executes bin with args and returns its standard output. A non-zero
// exit is a *CommandError carrying standard error.
func run(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", &CommandError{
			Args:   append([]string{bin}, args...),
			Stderr: strings.TrimSpace(stderr.String()),
			Err:    err,
		}
	}
	return stdout.String(), nil
}

// stderrContains reports whether err is a *CommandError whose standard error
// contains s.
func stderrContains(err error, s string) bool {
	var ce *CommandError
	return errors.As(err, &ce) && strings.Contains(ce.Stderr, s)
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
