package imagestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	gozfs "github.com/mistifyio/go-zfs/v3"
)

// User properties rackflow keeps on snapshots (digest, size) and roots (all).
const (
	propImage   = "rackflow:image"
	propVersion = "rackflow:version"
	propDigest  = "rackflow:digest"
	propSize    = "rackflow:size"
)

// runZFS runs `zfs args…` from PATH, as go-zfs does, for the two things
// go-zfs cannot do: create a snapshot with properties in one atomic command,
// and read several properties of many datasets with exact numbers (`zfs get
// -Hp`) in one call. Failures are *gozfs.Error, like go-zfs's own.
func runZFS(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "zfs", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", &gozfs.Error{Err: err, Debug: "zfs " + strings.Join(args, " "), Stderr: stderr.String()}
	}
	return stdout.String(), nil
}

// dsProps maps dataset name → property → value ("-" when unset).
type dsProps map[string]map[string]string

// zfsGet reads props of the named datasets (and, if recursive, of all their
// descendants, snapshots included) with `zfs get -Hp`. It returns the values
// and the dataset names in the order zfs printed them.
func zfsGet(ctx context.Context, props []string, recursive bool, names ...string) (dsProps, []string, error) {
	args := []string{"get", "-Hp"}
	if recursive {
		args = append(args, "-r")
	}
	args = append(args, "-o", "name,property,value", strings.Join(props, ","))
	out, err := runZFS(ctx, append(args, names...)...)
	if err != nil {
		return nil, nil, err
	}
	vals := dsProps{}
	var order []string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			return nil, nil, fmt.Errorf("unexpected `zfs get` line %q", line)
		}
		if vals[f[0]] == nil {
			vals[f[0]] = map[string]string{}
			order = append(order, f[0])
		}
		vals[f[0]][f[1]] = f[2]
	}
	return vals, order, nil
}

// zfsStderr returns the standard error of a failed zfs command in err's chain.
func zfsStderr(err error) string {
	var ze *gozfs.Error
	if errors.As(err, &ze) {
		return ze.Stderr
	}
	return ""
}

func isNotExist(err error) bool { return strings.Contains(zfsStderr(err), "does not exist") }
func isExist(err error) bool    { return strings.Contains(zfsStderr(err), "already exists") }
func isBusy(err error) bool     { return strings.Contains(zfsStderr(err), "is busy") }

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

// ZFSAvailable reports whether a zfs command is on PATH and `zfs list`
// works (a ZFS module or the zfs-fuse daemon answers). With zfs-fuse, go-zfs
// additionally needs the dev/zfsfuse shims first on PATH.
func ZFSAvailable() bool {
	if _, err := exec.LookPath("zfs"); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "zfs", "list", "-H", "-o", "name").Run() == nil
}
