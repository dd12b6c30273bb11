package zfsfuse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// zfsMounts returns the fuse.zfs mount points at or under dir, from
// /proc/self/mountinfo, deepest first.
func zfsMounts(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// "<id> <parent> <maj:min> <root> <mount point> <options> [optional…] - <fstype> <source> <super options>"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(postFields) < 1 || postFields[0] != "fuse.zfs" {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// unescapeMountinfo decodes the \ooo octal escapes mountinfo uses for
// space, tab, newline and backslash.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountStale detaches FUSE mounts under p.Mountpoint whose daemon is gone
// (a killed zfs-fuse leaves them answering ENOTCONN, and the new daemon
// will neither mount over them nor see them as unmounted). It reports
// whether it detached any.
func (p *Pool) unmountStale(log *slog.Logger) (bool, error) {
	mounts, err := zfsMounts(p.Mountpoint)
	if err != nil {
		return false, fmt.Errorf("zfsfuse: reading mounts: %w", err)
	}
	healed := false
	for _, mp := range mounts {
		// statfs always reaches the daemon; stat may be answered from
		// the kernel's attribute cache (zfsrc sets a one-hour timeout).
		var st unix.Statfs_t
		if err := unix.Statfs(mp, &st); !errors.Is(err, syscall.ENOTCONN) {
			continue
		}
		log.Warn("detaching stale zfs-fuse mount left by a dead daemon", "mountpoint", mp)
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return healed, fmt.Errorf("zfsfuse: unmount stale %s: %w", mp, err)
		}
		healed = true
	}
	return healed, nil
}

// mountAll mounts every filesystem of the pool that is not mounted.
func (p *Pool) mountAll(ctx context.Context, zfs string) error {
	out, err := run(ctx, zfs, "list", "-H", "-r", "-t", "filesystem", "-o", "name,mounted,mountpoint", p.Name)
	if err != nil {
		return fmt.Errorf("zfsfuse: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || f[1] != "no" || !filepath.IsAbs(f[2]) {
			continue
		}
		if _, err := run(ctx, zfs, "mount", f[0]); err != nil {
			return fmt.Errorf("zfsfuse: %w", err)
		}
	}
	return nil
}
