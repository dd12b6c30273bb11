package zfsfuse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// daemonStartTimeout bounds how long a freshly started (or starting) daemon
// may take to answer `zpool list`; it usually answers within 0.3 s.
const daemonStartTimeout = 20 * time.Second

// EnsureDaemon starts the zfs-fuse daemon unless it already answers
// `zpool list`, and waits until it does. The daemon detaches from the
// calling process (its own session) and keeps running after it exits; it
// writes its pid to /run/zfs-fuse.pid like the Debian init script, so
// `/etc/init.d/zfs-fuse stop` stops it. Needs root. Errors: ErrNotInstalled
// (wrapped), a start failure with the daemon's output, or a timeout.
func EnsureDaemon(ctx context.Context, log *slog.Logger) error {
	unlock, err := lockMachine()
	if err != nil {
		return err
	}
	defer unlock()
	return ensureDaemon(ctx, logger(log))
}

func ensureDaemon(ctx context.Context, log *slog.Logger) error {
	if _, err := os.Stat(daemonPath); err != nil {
		return fmt.Errorf("zfsfuse: %s: %w", daemonPath, ErrNotInstalled)
	}
	zpool, err := realBinary("zpool", "")
	if err != nil {
		return fmt.Errorf("zfsfuse: %w", err)
	}
	if daemonUp(ctx, zpool) {
		return nil
	}
	if pid, alive := daemonPid(); alive {
		log.Info("zfs-fuse daemon is starting; waiting", "pid", pid)
	} else {
		if err := startDaemon(log); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, daemonStartTimeout)
	defer cancel()
	for !daemonUp(ctx, zpool) {
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("zfsfuse: waiting for the zfs-fuse daemon to answer `zpool list`: %w", err)
		}
	}
	return nil
}

// daemonUp reports whether the daemon answers `zpool list`.
func daemonUp(ctx context.Context, zpool string) bool {
	_, err := run(ctx, zpool, "list", "-H", "-o", "name")
	return err == nil
}

// daemonPid reads the pid file and reports whether that process is a live
// (not zombie) zfs-fuse.
func daemonPid() (int, bool) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	// /proc/<pid>/stat is "<pid> (<comm>) <state> …".
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return pid, false
	}
	open, end := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
	if open < 0 || end < open || end+3 > len(stat) {
		return pid, false
	}
	comm, state := string(stat[open+1:end]), stat[end+2]
	return pid, comm == "zfs-fuse" && state != 'Z' && state != 'X'
}

// startDaemon runs zfs-fuse, which forks into the background and returns.
// Its output goes to a temporary file, not a pipe: the daemon keeps the
// descriptors, and a pipe would keep exec waiting for as long as it runs.
func startDaemon(log *slog.Logger) error {
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("zfsfuse: removing stale pid file: %w", err)
	}
	out, err := os.CreateTemp("", "zfs-fuse-start-*.log")
	if err != nil {
		return fmt.Errorf("zfsfuse: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()

	cmd := exec.Command(daemonPath, "--pidfile", pidFile)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	log.Info("starting zfs-fuse daemon", "path", daemonPath, "pidfile", pidFile)
	runErr := cmd.Run()
	if runErr != nil {
		msg, _ := io.ReadAll(io.NewSectionReader(out, 0, 64<<10))
		return fmt.Errorf("zfsfuse: starting %s: %w: %s", daemonPath, runErr, strings.TrimSpace(string(msg)))
	}
	return nil
}

// lockMachine takes a machine-wide lock so that concurrent processes (test
// binaries of several packages, say) neither start two daemons nor create
// the same pool twice. The lock is released by the returned function.
func lockMachine() (func(), error) {
	dir := "/run/lock"
	if unix.Access(dir, unix.W_OK) != nil {
		dir = os.TempDir()
	}
	f, err := os.OpenFile(filepath.Join(dir, "rackflow-zfsfuse.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("zfsfuse: lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("zfsfuse: lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// logger returns log, or a logger that discards everything when log is nil.
func logger(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
