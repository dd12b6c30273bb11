package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// The benchmark's network: two namespaces of its own joined by a veth pair,
// the servers on one end, the clients on the other; nothing appears in the
// host's namespace.
const (
	serverIf = "rbs0"
	clientIf = "rbc0"
	serverIP = "10.80.0.1"
	tftpdIP  = "10.80.0.3" // in.tftpd's, on the server end too
	clientIP = "10.80.0.2" // the client end's own address (TFTP clients)
	prefix   = "/16"
	mtu      = 1500
)

// testNet is the pair of namespaces.
type testNet struct {
	server, client string
}

// newTestNet creates the namespaces and the veth pair: server end serverIf
// with serverIP and a default route (DHCP replies to 255.255.255.255 need a
// way out), client end clientIf with clientIP. On error it deletes what it
// made; otherwise close deletes both namespaces (and so the pair).
func newTestNet(ctx context.Context) (*testNet, error) {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	n := &testNet{server: "rfbench-" + hex.EncodeToString(suffix)}
	n.client = n.server + "-c"
	steps := [][]string{
		{"netns", "add", n.server},
		{"netns", "add", n.client},
		{"-n", n.server, "link", "add", serverIf, "mtu", fmt.Sprint(mtu), "type", "veth", "peer", "name", clientIf, "netns", n.client},
		{"-n", n.server, "addr", "add", serverIP + prefix, "dev", serverIf},
		{"-n", n.server, "addr", "add", tftpdIP + prefix, "dev", serverIf},
		{"-n", n.client, "addr", "add", clientIP + prefix, "dev", clientIf},
		{"-n", n.server, "link", "set", "lo", "up"},
		{"-n", n.client, "link", "set", "lo", "up"},
		{"-n", n.server, "link", "set", serverIf, "up"},
		{"-n", n.client, "link", "set", clientIf, "up"},
		{"-n", n.server, "route", "add", "default", "dev", serverIf},
	}
	for _, args := range steps {
		if err := ipCmd(ctx, args...); err != nil {
			n.close()
			return nil, err
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ := exec.CommandContext(ctx, "ip", "-n", n.client, "-o", "link", "show", clientIf).Output()
		if bytes.Contains(out, []byte("state UP")) {
			return n, nil
		}
		if time.Now().After(deadline) {
			n.close()
			return nil, errors.New("veth pair not up after 5s")
		}
	}
}

// close deletes both namespaces; safe to call twice.
func (n *testNet) close() {
	for _, ns := range []string{n.client, n.server} {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

func ipCmd(ctx context.Context, args ...string) error {
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// cmdIn builds a command run in namespace ns (ip netns exec replaces itself
// with the command, so the process is the command's). It is killed when
// ctx is done.
func cmdIn(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
	return cmd
}

// shape limits the server end's egress to rate (tc tbf, e.g. "1000mbit")
// with fq_codel inside it, or removes the limit when rate is "". fq_codel
// is what a Debian host puts on its NICs (systemd's
// net.core.default_qdisc): each flow gets its own queue, so a DHCP or TFTP
// datagram does not wait behind — or get tail-dropped with — hundreds of
// bulk HTTP flows, as it would in a single FIFO.
func (n *testNet) shape(ctx context.Context, rate string) error {
	if rate == "" {
		return ipTC(ctx, n.server, "qdisc", "del", "dev", serverIf, "root")
	}
	if err := ipTC(ctx, n.server, "qdisc", "replace", "dev", serverIf, "root", "handle", "1:", "tbf", "rate", rate,
		"burst", "256kb", "latency", "50ms"); err != nil {
		return err
	}
	return ipTC(ctx, n.server, "qdisc", "replace", "dev", serverIf, "parent", "1:1", "handle", "10:", "fq_codel")
}

func ipTC(ctx context.Context, ns string, args ...string) error {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, "tc"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tc %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// macOf is simulated client i's MAC: 02:52:46:bb:hi:lo (locally
// administered).
func macOf(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x52, 0x46, 0xbb, byte(i >> 8), byte(i)}
}

// ipOf is simulated client i's reserved address: 10.80.(1+i/250).(1+i%250).
func ipOf(i int) net.IP {
	return net.IPv4(10, 80, byte(1+i/250), byte(1+i%250)).To4()
}

// maxClients bounds -dhcp-macs and -storm-clients (ipOf's range).
const maxClients = 250 * 250

// requireTools checks the benchmark can run: root, and every binary on
// PATH.
func requireTools(bins ...string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (creates network namespaces and a veth pair)")
	}
	var missing []string
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not on PATH: %s (Debian packages: iproute2, tftpd-hpa, dnsmasq-base, curl)", strings.Join(missing, ", "))
	}
	return nil
}
