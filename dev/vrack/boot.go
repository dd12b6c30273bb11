package vrack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/rackflow/rackflow/dev/vrack/redfishemu"
)

// boot is one firmware run of boot generation gen, in its own goroutine.
// ctx is cancelled by the next power transition or by Close; cancel (its
// own) releases it when the boot ends.
func (n *Node) boot(ctx context.Context, cancel context.CancelFunc, gen uint64, target string) {
	defer n.rack.boots.Done()
	defer cancel()
	if target != redfishemu.TargetPxe {
		n.step(gen, StepLocalBoot, nil, func(s *NodeState) { s.Phase = PhaseLocal }, "target", target)
		return
	}
	phase, seed := n.netboot(ctx, gen)
	if seed != nil {
		// The agent keeps seeding after its check-in (or failure) until its
		// time is up, the .torrent is withdrawn, or the boot ends.
		defer seed(ctx)
	}
	if ctx.Err() != nil { // superseded by a power transition, or the rack closed
		n.log.Debug("vrack boot abandoned", "err", context.Cause(ctx))
		return
	}
	n.setPhase(gen, phase)
}

// netboot runs PXE ROM → iPXE → agent and returns the phase the node ends
// in, and the agent's seeding function (nil when there is none).
func (n *Node) netboot(ctx context.Context, gen uint64) (Phase, func(context.Context)) {
	// PXE ROM: lease from 127.0.0.1, TFTP the boot file.
	pxe, err := n.dhcp(ctx, net.IPv4(127, 0, 0, 1), false)
	if !n.step(gen, StepDHCP, err, func(s *NodeState) {
		s.NetBoots++
		if err == nil {
			s.IP = pxe.ip
		}
	}, "ip", pxe.ip, "file", pxe.bootFile) || err != nil {
		return PhaseFailed, nil
	}
	tftpAddr, err := n.tftpServer(pxe)
	var size int64
	if err == nil {
		size, err = fetchTFTP(ctx, tftpAddr, pxe.bootFile)
	}
	if !n.step(gen, StepTFTP, err, nil, "server", tftpAddr, "file", pxe.bootFile, "bytes", size) || err != nil {
		return PhaseFailed, nil
	}

	// iPXE: lease again from the leased address, fetch the script.
	local := bindIP(pxe.ip)
	ipxe, err := n.dhcp(ctx, local, true)
	if err == nil && !strings.HasPrefix(ipxe.bootFile, "http://") && !strings.HasPrefix(ipxe.bootFile, "https://") {
		err = fmt.Errorf("iPXE boot file %q is not an http(s) URL", ipxe.bootFile)
	}
	if !n.step(gen, StepIPXEDHCP, err, func(s *NodeState) {
		if err == nil {
			s.IP = ipxe.ip
		}
	}, "ip", ipxe.ip, "file", ipxe.bootFile) || err != nil {
		return PhaseFailed, nil
	}
	hc := newHTTPClient(bindIP(ipxe.ip))
	defer hc.CloseIdleConnections()
	script, err := n.fetchScript(ctx, hc, ipxe.bootFile)
	if !n.step(gen, StepScript, err, nil, "url", ipxe.bootFile, "exit", script.exit, "kernel", script.kernel) || err != nil {
		return PhaseFailed, nil
	}
	if script.exit {
		n.step(gen, StepLocalBoot, nil, nil, "reason", "script exit")
		return PhaseLocal, nil
	}

	// iPXE "boot": kernel and initrds, then the agent.
	size, err = get(ctx, hc, script.kernel, io.Discard)
	if !n.step(gen, StepKernel, err, nil, "url", script.kernel, "bytes", size) || err != nil {
		return PhaseFailed, nil
	}
	for _, u := range script.initrds {
		size, err = get(ctx, hc, u, io.Discard)
		if !n.step(gen, StepInitrd, err, nil, "url", u, "bytes", size) || err != nil {
			return PhaseFailed, nil
		}
	}
	if identifyMode(script.args) {
		return n.runIdentify(ctx, gen, hc, script.args), nil
	}
	return n.runAgent(ctx, gen, hc, bindIP(ipxe.ip), script.args)
}

// maxScript bounds an iPXE script.
const maxScript = 64 << 10

// fetchScript GETs and parses the iPXE script at raw.
func (n *Node) fetchScript(ctx context.Context, hc *http.Client, raw string) (ipxeScript, error) {
	base, err := url.Parse(raw)
	if err != nil {
		return ipxeScript{}, fmt.Errorf("script URL %q: %w", raw, err)
	}
	var buf limitedBuffer
	buf.max = maxScript
	if _, err := get(ctx, hc, raw, &buf); err != nil {
		return ipxeScript{}, err
	}
	return parseIPXE(base, buf.String())
}

// limitedBuffer collects at most max bytes (no ReadFrom, so io.Copy goes
// through Write).
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.max {
		return 0, fmt.Errorf("larger than %d bytes", b.max)
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) String() string { return b.buf.String() }
