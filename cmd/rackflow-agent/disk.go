package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// diskFamilies are the whole-disk names the agent considers, in order of
// preference: virtio, SCSI/SATA/USB, NVMe namespaces, Xen. Partitions,
// NVMe multipath paths (nvme0c0n1), loop, ram, dm and optical devices do
// not match.
var diskFamilies = []*regexp.Regexp{
	regexp.MustCompile(`^vd([a-z]+)$`),
	regexp.MustCompile(`^sd([a-z]+)$`),
	regexp.MustCompile(`^nvme([0-9]+)n([0-9]+)$`),
	regexp.MustCompile(`^xvd([a-z]+)$`),
}

// errNoDisk is wrapped by selectDisk when no disk qualifies.
var errNoDisk = errors.New("no suitable disk")

// diskCandidate is a /sys/block entry matching a disk family.
type diskCandidate struct {
	name   string
	family int      // index in diskFamilies
	keys   []string // the family regexp's submatches, for ordering
}

// selectDisk returns the name (e.g. "vda") of the first whole disk under
// sysBlock (normally /sys/block) that is not removable (removable = 0), not
// read-only (ro = 0) and not empty (size > 0). Disks are taken in the
// order of diskFamilies, then in kernel naming order (sdz before sdaa,
// nvme2n1 before nvme10n1). The error lists why each candidate was
// rejected.
func selectDisk(sysBlock string) (string, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return "", fmt.Errorf("disk: %w", err)
	}
	var cands []diskCandidate
	for _, e := range entries {
		for i, re := range diskFamilies {
			if m := re.FindStringSubmatch(e.Name()); m != nil {
				cands = append(cands, diskCandidate{name: e.Name(), family: i, keys: m[1:]})
				break
			}
		}
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("disk: %w in %s (no vd*, sd*, nvme*n*, xvd* device; set %s=)", errNoDisk, sysBlock, argDisk)
	}
	slices.SortFunc(cands, compareDisks)
	var rejected []string
	for _, c := range cands {
		why := diskUnusable(filepath.Join(sysBlock, c.name))
		if why == "" {
			return c.name, nil
		}
		rejected = append(rejected, c.name+" "+why)
	}
	return "", fmt.Errorf("disk: %w in %s (%s)", errNoDisk, sysBlock, strings.Join(rejected, ", "))
}

// compareDisks orders candidates by family, then by kernel naming order:
// letter suffixes by length then alphabet, NVMe by controller then
// namespace number.
func compareDisks(a, b diskCandidate) int {
	if a.family != b.family {
		return a.family - b.family
	}
	for i := range a.keys {
		ka, kb := a.keys[i], b.keys[i]
		na, errA := strconv.Atoi(ka)
		nb, errB := strconv.Atoi(kb)
		if errA == nil && errB == nil {
			if na != nb {
				return na - nb
			}
			continue
		}
		if len(ka) != len(kb) {
			return len(ka) - len(kb)
		}
		if c := strings.Compare(ka, kb); c != 0 {
			return c
		}
	}
	return 0
}

// diskUnusable returns why the disk whose sysfs directory is dir cannot be
// written ("removable", "read-only", "empty", ...), or "" when it can.
func diskUnusable(dir string) string {
	read := func(name string) (string, bool) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b)), err == nil
	}
	if v, ok := read("removable"); !ok {
		return "(no removable attribute)"
	} else if v != "0" {
		return "removable"
	}
	if v, ok := read("ro"); !ok {
		return "(no ro attribute)"
	} else if v != "0" {
		return "read-only"
	}
	v, ok := read("size")
	if !ok {
		return "(no size attribute)"
	}
	sectors, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Sprintf("(bad size %q)", v)
	}
	if sectors <= 0 {
		return "empty"
	}
	return ""
}

// waitForDisk calls selectDisk until a disk qualifies or wait has passed
// (controllers such as NVMe may still be probing when the agent starts).
// It returns the device path under devDir.
func waitForDisk(ctx context.Context, sysBlock, devDir string, wait time.Duration) (string, error) {
	tries := uint(0)
	if wait <= 0 {
		tries = 1
	}
	name, err := backoff.Retry(ctx, func() (string, error) {
		name, err := selectDisk(sysBlock)
		if err != nil && !errors.Is(err, errNoDisk) {
			return "", backoff.Permanent(err)
		}
		return name, err
	}, constant(500*time.Millisecond, tries, wait).options(nil)...)
	if err != nil {
		return "", err
	}
	return filepath.Join(devDir, name), nil
}
