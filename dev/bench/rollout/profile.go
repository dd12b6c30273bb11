package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// Profiling of the main rollout (-profile-dir): what limits throughput.
const (
	goroutineDumpEvery = 30 * time.Second
	blockProfileRate   = int(time.Millisecond) // one sample per ms spent blocked
	mutexProfileRate   = 100                   // one in 100 contention events
)

// startProfiles writes, into -profile-dir, a CPU profile of the main
// rollout (cpu.pprof), block and mutex profiles (block.pprof,
// mutex.pprof) and a goroutine dump every 30 s (goroutines-<s>s.txt, stacks
// aggregated with counts). Without -profile-dir it does nothing. stop is
// always safe to call.
func (b *bench) startProfiles(ctx context.Context) (stop func(), err error) {
	dir := b.cfg.profileDir
	if dir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile dir: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	runtime.SetBlockProfileRate(blockProfileRate)
	runtime.SetMutexProfileFraction(mutexProfileRate)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	begin := time.Now()
	go func() {
		defer close(done)
		t := time.NewTicker(goroutineDumpEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				name := fmt.Sprintf("goroutines-%03.0fs.txt", time.Since(begin).Seconds())
				if err := writeProfile(filepath.Join(dir, name), "goroutine", 1); err != nil {
					b.log.Error("goroutine dump", "error", err)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
		pprof.StopCPUProfile()
		err := f.Close()
		err = errors.Join(err,
			writeProfile(filepath.Join(dir, "block.pprof"), "block", 0),
			writeProfile(filepath.Join(dir, "mutex.pprof"), "mutex", 0))
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
		if err != nil {
			b.log.Error("profiles", "error", err)
		}
		fmt.Fprintf(b.progress, "profiles of the main rollout in %s\n", dir)
	}, nil
}

func writeProfile(path, name string, debug int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, debug); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dbHandles counts this process's open file descriptors on the Temporal
// SQLite database file (one per SQLite connection).
func dbHandles(stateDir string) int {
	db := filepath.Join(stateDir, "temporal", "temporal.db")
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == db {
			n++
		}
	}
	return n
}

// machineCPU is the machine's busy and total CPU time (all processes, all
// cores) from /proc/stat, in clock ticks.
type machineCPU struct{ busy, total int64 }

func readMachineCPU() machineCPU {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var m machineCPU
		for i, s := range f[1:] {
			v, _ := strconv.ParseInt(s, 10, 64)
			m.total += v
			if i != 3 && i != 4 { // idle, iowait
				m.busy += v
			}
		}
		return m
	}
	return machineCPU{}
}

// busyShare is the share of all cores busy between m and a later reading.
func (m machineCPU) busyShare(later machineCPU) float64 {
	if later.total <= m.total {
		return 0
	}
	return float64(later.busy-m.busy) / float64(later.total-m.total)
}
