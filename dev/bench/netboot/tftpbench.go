package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// tftpPoint is one row: the median MB/s of each server over reps runs.
type tftpPoint struct {
	streams, reps   int
	rackflow, tftpd float64 // MB/s, lockstep both
	anticipate      float64 // MB/s, rackflow with sender anticipation
}

// tftpAnticipate is the window of the anticipating rackflow server, in
// blocks (netboot.Config.TFTPAnticipate).
const tftpAnticipate = 8

// anticipatePort is the anticipating rackflow server's TFTP port, on
// serverIP beside the lockstep one's 69.
const anticipatePort = "6969"

// tftpComparison is the TFTP part of the table.
type tftpComparison struct {
	size    int64
	blksize int
	points  []tftpPoint
}

// benchTFTP serves file (size bytes, in root) from rackflow's TFTP server
// on serverIP and from tftp-hpa's in.tftpd on tftpdIP, both lockstep (RFC
// 1350: every block waits for its ACK), and from a second rackflow server
// with sender anticipation (tftpAnticipate blocks, on anticipatePort), all
// running in the server namespace over the same root, and downloads it
// with curl from the client namespace: for each entry of streams, that many concurrent
// transfers (curl --parallel, one process), blksize negotiated (RFC 2348)
// the same for both. Runs alternate between the servers (which goes first
// alternates too), reps[i] times each, and the median counts: the host's
// load drifts, and both servers see the same drift.
func benchTFTP(ctx context.Context, n *testNet, work, root, file string, size int64, blksize int, streams, reps []int, stderr io.Writer) (tftpComparison, error) {
	cmp := tftpComparison{size: size, blksize: blksize}
	srv, err := startRackflow(ctx, n, work, "tftp", 0, stderr)
	if err != nil {
		return cmp, err
	}
	defer func() { _ = srv.stop() }()
	ant, err := startRackflow(ctx, n, work, "tftp-anticipate", 0, stderr, "-dhcp", "", "-http", "",
		"-tftp", serverIP+":"+anticipatePort, "-tftp-anticipate", strconv.Itoa(tftpAnticipate))
	if err != nil {
		return cmp, err
	}
	defer func() { _ = ant.stop() }()
	// in.tftpd: foreground, listening, chrooted to the same root (-s), as
	// the tftp user the package creates (files 0644).
	tftpd := cmdIn(ctx, n.server, "in.tftpd", "--foreground", "--listen", "--address", tftpdIP+":69", "--secure", root)
	tftpd.Stderr = stderr
	if err := tftpd.Start(); err != nil {
		return cmp, fmt.Errorf("in.tftpd: %w", err)
	}
	defer func() {
		_ = tftpd.Process.Kill()
		_ = tftpd.Wait()
	}()
	if err := waitUDPListener(ctx, n.server, tftpdIP+":69"); err != nil {
		return cmp, fmt.Errorf("in.tftpd: %w", err)
	}
	servers := []struct{ name, ip string }{{"rackflow", serverIP}, {"in.tftpd", tftpdIP}, {"anticipate", serverIP + ":" + anticipatePort}}
	for _, s := range servers { // warm: page cache, first-transfer costs
		if _, err := curlTFTP(ctx, n, s.ip, file, size, blksize, 1); err != nil {
			return cmp, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	for i, st := range streams {
		mbps := map[string][]float64{}
		for rep := range reps[i] {
			for k := range servers {
				s := servers[(k+rep)%len(servers)]
				r, err := curlTFTP(ctx, n, s.ip, file, size, blksize, st)
				if err != nil {
					return cmp, fmt.Errorf("%s: %w", s.name, err)
				}
				mbps[s.name] = append(mbps[s.name], r.mbps())
			}
		}
		cmp.points = append(cmp.points, tftpPoint{streams: st, reps: reps[i],
			rackflow: median(mbps["rackflow"]), tftpd: median(mbps["in.tftpd"]), anticipate: median(mbps["anticipate"])})
	}
	return cmp, nil
}

// median of xs (not empty).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// curlTFTP downloads file from server ("ip" or "ip:port") streams times at once with one curl
// process in the client namespace, checking every transfer received size
// bytes.
func curlTFTP(ctx context.Context, n *testNet, server, file string, size int64, blksize, streams int) (tftpRun, error) {
	args := []string{"-sS", "--max-time", "900", "--tftp-blksize", strconv.Itoa(blksize), "-w", "%{size_download}\n"}
	if streams > 1 {
		args = append(args, "--parallel", "--parallel-immediate", "--parallel-max", strconv.Itoa(streams))
	}
	for range streams {
		args = append(args, "-o", "/dev/null", "tftp://"+server+"/"+file)
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
func startRackflow(ctx context.Context, n *testNet, work, name string, macs int, stderr io.Writer, extra ...string) (*roleProcess, error) {
	return startRole(ctx, n.server, roleServer, stderr, append([]string{"-macs", strconv.Itoa(macs),
		"-tftp-root", filepath.Join(work, "tftp"), "-artifacts", filepath.Join(work, "artifacts"),
		"-store", filepath.Join(work, "store"), "-log", filepath.Join(work, "rackflow-"+name+".log")}, extra...)...)
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
