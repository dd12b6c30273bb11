package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// nsPrefix starts the name of every namespace the benchmark creates, so a
// later run can delete what a crashed one left behind.
const nsPrefix = "rfsw-"

// Addresses of the testbed's one /24: the image server and the clients.
const (
	serverIP     = "10.81.0.1"
	clientIPBase = 10 // client i (0-based) is 10.81.0.(10+i)
	netPrefixLen = "/24"
	linkDev      = "eth0" // each host's end of its veth pair
	maxClients   = 200
)

// clientIP is the address of client i (0-based).
func clientIP(i int) string { return fmt.Sprintf("10.81.0.%d", clientIPBase+i) }

// testbed is a bridge in a namespace of its own with the image server and
// the clients, each in its own namespace, attached to it by a veth pair
// whose two ends are both shaped with a token bucket (tbf) at rate: the
// host end's egress is the host's uplink, the bridge end's egress its
// downlink. Nothing is created in the caller's namespace.
type testbed struct {
	bridge, server string
	clients        []string
	rateBit        int64 // per link and direction, bit/s
}

// run runs a command and returns its output; the error carries the
// command line and its output.
func runCmd(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// cleanStale deletes every namespace named with nsPrefix (a crashed run's).
func cleanStale(ctx context.Context) (int, error) {
	out, err := runCmd(ctx, "ip", "netns", "list")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		if _, err := runCmd(ctx, "ip", "netns", "del", f[0]); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// newTestbed creates the bridge, the server and n client namespaces, links
// them and shapes every link at rateBit bit/s each way. On error it
// deletes what it created.
func newTestbed(ctx context.Context, n int, rateBit int64) (tb *testbed, err error) {
	tb = &testbed{bridge: nsPrefix + "br", server: nsPrefix + "srv", rateBit: rateBit}
	for i := range n {
		tb.clients = append(tb.clients, fmt.Sprintf("%sc%02d", nsPrefix, i+1))
	}
	defer func() {
		if err != nil {
			tb.close()
			tb = nil
		}
	}()
	for _, ns := range append([]string{tb.bridge, tb.server}, tb.clients...) {
		if _, err := runCmd(ctx, "ip", "netns", "add", ns); err != nil {
			return tb, err
		}
	}
	for _, args := range [][]string{
		{"-n", tb.bridge, "link", "add", "br0", "type", "bridge"},
		{"-n", tb.bridge, "link", "set", "br0", "up"},
	} {
		if _, err := runCmd(ctx, "ip", args...); err != nil {
			return tb, err
		}
	}
	if err := tb.attach(ctx, tb.server, "vsrv", serverIP); err != nil {
		return tb, err
	}
	for i, ns := range tb.clients {
		if err := tb.attach(ctx, ns, fmt.Sprintf("vc%02d", i+1), clientIP(i)); err != nil {
			return tb, err
		}
	}
	return tb, nil
}

// attach links namespace ns to the bridge: a veth pair brIf (bridge side)
// and linkDev (in ns, with ip), both ends shaped.
func (tb *testbed) attach(ctx context.Context, ns, brIf, ip string) error {
	for _, args := range [][]string{
		{"-n", tb.bridge, "link", "add", brIf, "type", "veth", "peer", "name", linkDev, "netns", ns},
		{"-n", tb.bridge, "link", "set", brIf, "master", "br0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", ip + netPrefixLen, "dev", linkDev},
		{"-n", ns, "link", "set", linkDev, "up"},
	} {
		if _, err := runCmd(ctx, "ip", args...); err != nil {
			return err
		}
	}
	if err := tb.shape(ctx, tb.bridge, brIf); err != nil {
		return err
	}
	return tb.shape(ctx, ns, linkDev)
}

// shape puts a token bucket filter on dev's egress: rate tb.rateBit, a
// bucket of 10 ms at that rate (at least 16 KiB: GSO packets larger than
// the bucket are segmented by tbf), packets queued for at most 100 ms.
func (tb *testbed) shape(ctx context.Context, ns, dev string) error {
	burst := max(tb.rateBit/8/100, 16<<10)
	_, err := runCmd(ctx, "tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", fmt.Sprintf("%dbit", tb.rateBit), "burst", fmt.Sprint(burst), "latency", "100ms")
	return err
}

// txBytes returns the bytes sent by linkDev in namespace ns (headers
// included: the link's own counter).
func txBytes(ctx context.Context, ns string) (int64, error) {
	out, err := runCmd(ctx, "ip", "-n", ns, "-s", "-j", "link", "show", "dev", linkDev)
	if err != nil {
		return 0, err
	}
	var links []struct {
		Stats64 struct {
			TX struct {
				Bytes int64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ip -s -j link show in %s: unexpected output %q: %v", ns, out, err)
	}
	return links[0].Stats64.TX.Bytes, nil
}

// close deletes every namespace of the testbed (and so the veth pairs and
// the bridge), with a fresh bounded context: it runs after cancellation.
func (tb *testbed) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, ns := range append([]string{tb.bridge, tb.server}, tb.clients...) {
		if _, err := runCmd(ctx, "ip", "netns", "del", ns); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
