package main

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/rackflow/rackflow/netboot"
)

// maxMessage bounds the check-in message in bytes.
const maxMessage = 2000

// agent runs the provisioning steps once. Its fields are the knobs main
// sets from flags and tests set directly.
type agent struct {
	con            *console
	cmdlinePath    string        // kernel command line, normally /proc/cmdline
	sysBlock       string        // normally /sys/block
	devDir         string        // normally /dev
	deviceWait     time.Duration // how long to wait for a disk or NIC to appear
	timeout        time.Duration // bound on everything before the check-in
	checkInTimeout time.Duration // bound on the check-in itself
	noDHCP         bool          // use the network as it is
	net            *networkSetup
	image          *imageFetcher
	swarm          *swarmFetcher // used when the boot profile carries rackflow.torrent
	checkIn        *checkInPoster
	ident          *identifyMode // used when the command line has rackflow.identify
}

// run does the steps (arguments, disk, network, image, digest, check-in),
// printing one line per step and the final "done" or "failed" line. It
// returns true only when the check-in was accepted with status ok.
func (a *agent) run(parent context.Context) bool {
	ok := a.steps(parent)
	a.con.finish(ok)
	return ok
}

// steps is run without the final line.
func (a *agent) steps(parent context.Context) bool {
	words, err := readCmdline(a.cmdlinePath)
	if err != nil {
		a.con.failed(err)
		a.con.step("cannot check in: no kernel command line")
		return false
	}
	if _, ok := lastValue(words, netboot.ArgIdentify); ok {
		return a.identify(parent, words)
	}
	args, stepErr := netboot.ParseAgentArgs(words)
	if stepErr != nil {
		stepErr = fmt.Errorf("args: %w", stepErr)
		fallback, canReport := checkInFallback(words)
		if !canReport {
			a.con.failed(stepErr)
			a.con.step("cannot check in: %s, %s, %s and an http(s) %s are needed to report the failure",
				netboot.ArgNode, netboot.ArgRun, netboot.ArgToken, netboot.ArgCheckIn)
			return false
		}
		args = fallback
	}
	opts, err := parseAgentOptions(words)
	if stepErr == nil {
		stepErr = err
	}

	ctx, cancel := context.WithTimeoutCause(parent, a.timeout, fmt.Errorf("agent timeout of %s exceeded", a.timeout))
	defer cancel()

	diskPath := opts.Disk
	if stepErr == nil && diskPath == "" {
		diskPath, stepErr = waitForDisk(ctx, a.sysBlock, a.devDir, a.deviceWait)
	}
	iface, warning := opts.Iface, ""
	var netErr error
	if !a.noDHCP {
		iface, warning, netErr = waitForIface(ctx, opts, a.deviceWait)
	}
	a.con.step("start node=%s run=%s disk=%s iface=%s", orNone(args.Node), orNone(args.Run), orNone(diskPath), orNone(iface))
	for _, w := range opts.Warnings {
		a.con.step("warning %s", w)
	}
	if warning != "" {
		a.con.step("warning %s", warning)
	}

	if a.noDHCP {
		a.con.step("network skipped (--no-dhcp)")
	} else {
		if netErr == nil {
			_, netErr = a.net.bringUp(ctx, iface)
		}
		if netErr != nil {
			a.con.failed(netErr)
			a.con.step("cannot check in: the network is not up")
			return false
		}
	}

	ci := netboot.CheckIn{Node: args.Node, Run: args.Run, Token: args.Token, Status: netboot.CheckInOK}
	var seed func() string
	if stepErr == nil {
		ci.Digest, seed, stepErr = a.install(ctx, args, diskPath)
	}
	if stepErr != nil {
		a.con.failed(stepErr)
		ci.Status, ci.Message = netboot.CheckInError, truncate(oneLine(stepErr.Error()), maxMessage)
	}

	// The check-in gets its own time even when the steps used all of theirs.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(parent), a.checkInTimeout)
	defer ccancel()
	status, err := a.checkIn.post(cctx, args.CheckInURL, ci)
	if seed != nil {
		defer func() { a.con.step("seeding stopped: %s", seed()) }()
	}
	if err != nil {
		a.con.failed(err)
		return false
	}
	a.con.step("check-in accepted (HTTP %d)", status)
	if seed != nil && args.SeedFor > 0 {
		a.con.step("seeding for up to %s", args.SeedFor)
	}
	return stepErr == nil
}

// install writes the image onto the disk at diskPath (through the swarm
// when args carry a torrent, else over HTTP) and checks the digest read
// back from it. It prints the "image written" and "digest ok" lines and
// returns the read-back digest (also on a mismatch, for the check-in).
// After a good swarm download it also returns seed, which keeps seeding
// from the disk for args.SeedFor (or until the .torrent is withdrawn or
// the agent's context ends), then closes the disk, and says why it
// stopped; otherwise the disk is closed on return and seed is nil.
func (a *agent) install(ctx context.Context, args netboot.AgentArgs, diskPath string) (digest string, seed func() string, err error) {
	d, err := openDisk(diskPath)
	if err != nil {
		return "", nil, err
	}
	var sw *swarmDownload
	defer func() {
		if seed == nil {
			if sw != nil {
				_ = sw.leecher.Close()
			}
			d.close()
		}
	}()
	var dl download
	if args.TorrentURL != "" && a.swarm != nil {
		sw, err = a.swarm.fetch(ctx, args, d)
		if sw != nil {
			dl = sw.download
		}
	} else {
		dl, err = a.image.fetch(ctx, args.ImageURL, d)
	}
	if err != nil {
		return "", nil, err
	}
	a.con.step("image written %d bytes in %s (%.1f MB/s)", dl.Bytes, seconds(dl.Elapsed), rateMBps(dl.Bytes, dl.Elapsed))
	onDisk, err := d.readBack(ctx, dl.Bytes)
	if err != nil {
		return "", nil, err
	}
	if sw != nil {
		dl.Digest = onDisk // every piece was verified: the disk holds what the torrent describes
	}
	if err := checkDigest(args.Digest, dl, onDisk, args.ImageURL, d.path); err != nil {
		return onDisk, nil, err
	}
	a.con.step("digest ok %s", onDisk)
	if sw != nil {
		seed = func() string {
			defer d.close()
			return a.swarm.seed(ctx, sw, args.TorrentURL, args.SeedFor)
		}
	}
	return onDisk, seed, nil
}

// orNone returns s, or "none" when s is empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// truncate cuts s to at most n bytes at a character boundary, marking the
// cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
