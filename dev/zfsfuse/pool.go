package zfsfuse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Pool sizes, in bytes, of the sparse backing file.
const (
	DefaultSize int64 = 2 << 30  // used when Ensure is given size 0
	MinSize     int64 = 64 << 20 // the smallest vdev ZFS accepts
)

// ErrPoolConflict means a pool of the requested name is imported from a
// file other than this state dir's pool.img.
var ErrPoolConflict = errors.New("a pool of that name is imported from another file")

// Pool is a file-backed zfs-fuse pool owned by one state dir.
type Pool struct {
	Name       string // pool name, also its root dataset, e.g. "rackflow"
	File       string // sparse backing file: <stateDir>/zfs/pool.img
	Mountpoint string // <stateDir>/zfs/mnt; dataset "<Name>/a/b" mounts at <Mountpoint>/a/b
	BinDir     string // <stateDir>/zfs/bin, holding the zfs and zpool shims
}

// poolNameRE is stricter than ZFS: a letter, then letters, digits, '_', '-'.
var poolNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// validPoolName rejects names ZFS refuses or reserves.
func validPoolName(name string) error {
	if !poolNameRE.MatchString(name) {
		return fmt.Errorf("zfsfuse: invalid pool name %q: want [a-z][a-z0-9_-]*, at most 63 characters", name)
	}
	for _, reserved := range []string{"mirror", "raidz", "draid", "spare", "log", "cache"} {
		if strings.HasPrefix(name, reserved) {
			return fmt.Errorf("zfsfuse: invalid pool name %q: ZFS reserves names starting with %q", name, reserved)
		}
	}
	if len(name) > 1 && name[0] == 'c' && name[1] >= '0' && name[1] <= '9' {
		return fmt.Errorf("zfsfuse: invalid pool name %q: ZFS reserves c<digit>… names", name)
	}
	return nil
}

// Ensure makes pool name, backed by <stateDir>/zfs/pool.img, imported and
// mounted under <stateDir>/zfs/mnt, starting the zfs-fuse daemon if needed
// and installing the shims into <stateDir>/zfs/bin. An existing pool.img is
// imported; otherwise a sparse file of size bytes (0 → DefaultSize, at least
// MinSize) is created with the pool on it (cachefile=none). Mounts under
// the mountpoint left dead by a killed daemon ("transport endpoint is not
// connected") are detached and the datasets mounted again. Idempotent.
// Errors: ErrNotInstalled, ErrPoolConflict (wrapped), *CommandError.
func Ensure(ctx context.Context, stateDir, name string, size int64, log *slog.Logger) (*Pool, error) {
	log = logger(log)
	if err := validPoolName(name); err != nil {
		return nil, err
	}
	if size == 0 {
		size = DefaultSize
	}
	if size < MinSize {
		return nil, fmt.Errorf("zfsfuse: pool size %d bytes is below the minimum %d", size, MinSize)
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("zfsfuse: state dir: %w", err)
	}
	base := filepath.Join(abs, "zfs")
	p := &Pool{
		Name:       name,
		File:       filepath.Join(base, "pool.img"),
		Mountpoint: filepath.Join(base, "mnt"),
		BinDir:     filepath.Join(base, "bin"),
	}
	if err := os.MkdirAll(p.Mountpoint, 0o755); err != nil {
		return nil, fmt.Errorf("zfsfuse: %w", err)
	}

	unlock, err := lockMachine()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := ensureDaemon(ctx, log); err != nil {
		return nil, err
	}
	if err := InstallShims(p.BinDir); err != nil {
		return nil, err
	}
	zpool, zfs, err := p.binaries()
	if err != nil {
		return nil, err
	}

	healed, err := p.unmountStale(log)
	if err != nil {
		return nil, err
	}
	imported, err := p.imported(ctx, zpool)
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(p.File)
	switch {
	case imported:
		if err := p.checkOwned(ctx, zpool); err != nil {
			return nil, err
		}
	case statErr == nil:
		if err := p.importPool(ctx, zpool, log); err != nil {
			return nil, err
		}
	case errors.Is(statErr, os.ErrNotExist):
		if err := p.create(ctx, zpool, size, log); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("zfsfuse: %w", statErr)
	}

	if healed && imported {
		if err := p.mountAll(ctx, zfs); err != nil {
			return nil, err
		}
	}
	mp, err := run(ctx, zfs, "get", "-H", "-o", "value", "mountpoint", p.Name)
	if err != nil {
		return nil, fmt.Errorf("zfsfuse: %w", err)
	}
	if strings.TrimSpace(mp) != p.Mountpoint {
		log.Info("moving pool mountpoint", "pool", p.Name, "from", strings.TrimSpace(mp), "to", p.Mountpoint)
		if _, err := run(ctx, zfs, "set", "mountpoint="+p.Mountpoint, p.Name); err != nil {
			return nil, fmt.Errorf("zfsfuse: %w", err)
		}
	}
	return p, nil
}

// binaries returns the real zpool and zfs commands (never the shims).
func (p *Pool) binaries() (zpool, zfs string, err error) {
	if zpool, err = realBinary("zpool", p.BinDir); err != nil {
		return "", "", fmt.Errorf("zfsfuse: %w", err)
	}
	if zfs, err = realBinary("zfs", p.BinDir); err != nil {
		return "", "", fmt.Errorf("zfsfuse: %w", err)
	}
	return zpool, zfs, nil
}

// imported reports whether a pool named p.Name is imported.
func (p *Pool) imported(ctx context.Context, zpool string) (bool, error) {
	_, err := run(ctx, zpool, "list", "-H", "-o", "name", p.Name)
	switch {
	case err == nil:
		return true, nil
	case stderrContains(err, "no such pool"):
		return false, nil
	default:
		return false, fmt.Errorf("zfsfuse: %w", err)
	}
}

// checkOwned verifies that the imported pool p.Name has p.File as a vdev.
func (p *Pool) checkOwned(ctx context.Context, zpool string) error {
	out, err := run(ctx, zpool, "status", p.Name)
	if err != nil {
		return fmt.Errorf("zfsfuse: %w", err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == p.File {
			return nil
		}
	}
	return fmt.Errorf("zfsfuse: pool %q, want vdev %s: %w", p.Name, p.File, ErrPoolConflict)
}

// importPool imports p.Name from the files in p.File's directory. A pool
// whose daemon died without exporting it needs -f; the file is ours, so
// that is retried once.
func (p *Pool) importPool(ctx context.Context, zpool string, log *slog.Logger) error {
	dir := filepath.Dir(p.File)
	log.Info("importing zfs-fuse pool", "pool", p.Name, "file", p.File)
	_, err := run(ctx, zpool, "import", "-d", dir, p.Name)
	if err != nil && stderrContains(err, "-f") {
		log.Warn("pool was not exported cleanly; importing with -f", "pool", p.Name, "err", err)
		_, err = run(ctx, zpool, "import", "-f", "-d", dir, p.Name)
	}
	if err != nil {
		return fmt.Errorf("zfsfuse: import: %w", err)
	}
	if err := p.checkOwned(ctx, zpool); err != nil {
		return err
	}
	if _, err := run(ctx, zpool, "set", "cachefile=none", p.Name); err != nil {
		return fmt.Errorf("zfsfuse: %w", err)
	}
	return nil
}

// create makes the sparse backing file and the pool on it.
func (p *Pool) create(ctx context.Context, zpool string, size int64, log *slog.Logger) error {
	f, err := os.OpenFile(p.File, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("zfsfuse: pool file: %w", err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p.File)
		return fmt.Errorf("zfsfuse: pool file: %w", err)
	}
	log.Info("creating zfs-fuse pool", "pool", p.Name, "file", p.File, "bytes", size, "mountpoint", p.Mountpoint)
	if _, err := run(ctx, zpool, "create", "-o", "cachefile=none", "-m", p.Mountpoint, p.Name, p.File); err != nil {
		os.Remove(p.File)
		return fmt.Errorf("zfsfuse: create: %w", err)
	}
	return nil
}

// Export exports the pool (unmounting its datasets), keeping pool.img so a
// later Ensure imports it again. Idempotent. Errors: ErrPoolConflict when
// the imported pool of that name is not this one, *CommandError.
func (p *Pool) Export(ctx context.Context) error {
	return p.release(ctx, "export")
}

// Destroy destroys the pool and removes pool.img. Idempotent. Errors:
// ErrPoolConflict when the imported pool of that name is not this one,
// *CommandError.
func (p *Pool) Destroy(ctx context.Context) error {
	if err := p.release(ctx, "destroy"); err != nil {
		return err
	}
	if err := os.Remove(p.File); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("zfsfuse: %w", err)
	}
	return nil
}

// release runs `zpool export|destroy` on an imported, owned pool. zfs-fuse
// unmounts asynchronously, so "busy" is retried, for ~7 s in all (seconds
// of busy are seen on a loaded machine).
func (p *Pool) release(ctx context.Context, verb string) error {
	unlock, err := lockMachine()
	if err != nil {
		return err
	}
	defer unlock()
	zpool, _, err := p.binaries()
	if err != nil {
		return err
	}
	imported, err := p.imported(ctx, zpool)
	if err != nil || !imported {
		return err
	}
	if err := p.checkOwned(ctx, zpool); err != nil {
		return err
	}
	args := []string{verb, p.Name}
	if verb == "destroy" {
		args = []string{verb, "-f", p.Name}
	}
	for attempt := 1; ; attempt++ {
		_, err = run(ctx, zpool, args...)
		if err == nil || attempt == 8 || !stderrContains(err, "busy") {
			break
		}
		if err := sleepCtx(ctx, time.Duration(attempt)*250*time.Millisecond); err != nil {
			return fmt.Errorf("zfsfuse: %s %s: %w", verb, p.Name, err)
		}
	}
	if err != nil {
		return fmt.Errorf("zfsfuse: %w", err)
	}
	return nil
}

// Env returns this process's environment with BinDir first on PATH, for a
// child process that uses zfs/zpool (or go-zfs).
func (p *Pool) Env() []string {
	env := os.Environ()
	out := make([]string, 0, len(env)+1)
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PATH="+p.pathWith(path))
}

// PrependPath puts BinDir first on this process's PATH, so go-zfs, which
// runs "zfs" and "zpool" from PATH, reaches the shims. Idempotent.
func (p *Pool) PrependPath() error {
	return os.Setenv("PATH", p.pathWith(os.Getenv("PATH")))
}

func (p *Pool) pathWith(path string) string {
	if path == "" {
		return p.BinDir
	}
	if first, _, _ := strings.Cut(path, string(os.PathListSeparator)); first == p.BinDir {
		return path
	}
	return p.BinDir + string(os.PathListSeparator) + path
}
