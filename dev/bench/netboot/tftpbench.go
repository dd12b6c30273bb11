package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// tftpRun is one measured TFTP run: streams concurrent downloads of the
// same file.
type tftpRun struct {
	streams int
	bytes   int64         // total received
	wall    time.Duration // curl's start to its exit
}

// mbps is the aggregate goodput in MB/s (10^6 bytes).
func (r tftpRun) mbps() float64 { return float64(r.bytes) / 1e6 / r.wall.Seconds() }

// tftpComparison is the TFTP part of the table.
type tftpComparison struct {
	size     int64
	blksize  int
	rackflow []tftpRun // per entry of streams
	tftpd    []tftpRun
}

// benchTFTP serves file (size bytes, in root) from rackflow's TFTP server,
// then from tftp-hpa's in.tftpd, each started alone in the server
// namespace, and downloads it with curl from the client namespace: for
// each entry of streams, that many concurrent transfers (curl --parallel,
// one process), blksize negotiated (RFC 2348) the same for both.
func benchTFTP(ctx context.Context, n *testNet, work, root, file string, size int64, blksize int, streams []int, stderr io.Writer) (tftpComparison, error) {
	cmp := tftpComparison{size: size, blksize: blksize}
	srv, err := startRackflow(ctx, n, work, "tftp", 0, stderr)
	if err != nil {
		return cmp, err
	}
	cmp.rackflow, err = tftpRuns(ctx, n, file, size, blksize, streams)
	if serr := srv.stop(); err == nil && serr != nil {
		err = fmt.Errorf("rackflow server: %w", serr)
	}
	if err != nil {
		return cmp, fmt.Errorf("rackflow: %w", err)
	}

	// in.tftpd: foreground, listening on the same address, chrooted to the
	// same root (-s), as the tftp user the package creates (files 0644).
	tftpd := cmdIn(ctx, n.server, "in.tftpd", "--foreground", "--listen", "--address", serverIP+":69", "--secure", root)
	tftpd.Stderr = stderr
	if err := tftpd.Start(); err != nil {
		return cmp, fmt.Errorf("in.tftpd: %w", err)
	}
	defer func() {
		_ = tftpd.Process.Kill()
		_ = tftpd.Wait()
	}()
	if err := waitUDPListener(ctx, n.server, 69); err != nil {
		return cmp, fmt.Errorf("in.tftpd: %w", err)
	}
	cmp.tftpd, err = tftpRuns(ctx, n, file, size, blksize, streams)
	if err != nil {
		return cmp, fmt.Errorf("in.tftpd: %w", err)
	}
	return cmp, nil
}

func tftpRuns(ctx context.Context, n *testNet, file string, size int64, blksize int, streams []int) ([]tftpRun, error) {
	// One unmeasured transfer first: page cache and server warm.
	if _, err := curlTFTP(ctx, n, file, size, blksize, 1); err != nil {
		return nil, err
	}
	var runs []tftpRun
	for _, s := range streams {
		r, err := curlTFTP(ctx, n, file, size, blksize, s)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// curlTFTP downloads file streams times at once with one curl process in
// the client namespace, checking every transfer received size bytes.
func curlTFTP(ctx context.Context, n *testNet, file string, size int64, blksize, streams int) (tftpRun, error) {
	args := []string{"-sS", "--max-time", "600", "--tftp-blksize", strconv.Itoa(blksize), "-w", "%{size_download}\n"}
	if streams > 1 {
		args = append(args, "--parallel", "--parallel-immediate", "--parallel-max", strconv.Itoa(streams))
	}
	for range streams {
		args = append(args, "-o", "/dev/null", "tftp://"+serverIP+"/"+file)
	}
	start := time.Now()
	out, err := cmdIn(ctx, n.client, "curl", args...).Output()
	wall := time.Since(start)
	if err != nil {
		return tftpRun{}, fmt.Errorf("curl, %d streams: %w: %s", streams, err, exitStderr(err))
	}
	sizes := strings.Fields(string(out))
	if len(sizes) != streams {
		return tftpRun{}, fmt.Errorf("curl, %d streams: %d results", streams, len(sizes))
	}
	var total int64
	for _, f := range sizes {
		got, err := strconv.ParseInt(f, 10, 64)
		if err != nil || got != size {
			return tftpRun{}, fmt.Errorf("curl, %d streams: a transfer received %s bytes, want %d", streams, f, size)
		}
		total += got
	}
	return tftpRun{streams: streams, bytes: total, wall: wall}, nil
}

// startRackflow runs the netboot service in the server namespace over the
// benchmark's files (work/tftp, work/artifacts, work/store) with
// reservations for macs simulated clients; name labels its log file.
func startRackflow(ctx context.Context, n *testNet, work, name string, macs int, stderr io.Writer) (*roleProcess, error) {
	return startRole(ctx, n.server, roleServer, stderr, "-macs", strconv.Itoa(macs),
		"-tftp-root", filepath.Join(work, "tftp"), "-artifacts", filepath.Join(work, "artifacts"),
		"-store", filepath.Join(work, "store"), "-log", filepath.Join(work, "rackflow-"+name+".log"))
}

// exitStderr returns the stderr an *exec.ExitError captured.
func exitStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// writeRandomFile writes size pseudo-random bytes to path, readable by all
// (in.tftpd drops to the tftp user).
func writeRandomFile(path string, size int64, seed byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	x := uint32(seed) + 1
	for i := range buf {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		buf[i] = byte(x)
	}
	for left := size; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			f.Close()
			return err
		}
		left -= k
		buf[0]++ // blocks differ
	}
	return f.Close()
}
