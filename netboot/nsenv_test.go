package netboot

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// The real-client tests run the netboot service in a network namespace of
// the test's own ("server") and the clients in a second one ("client"),
// joined by a veth pair created inside them: nothing appears in the host's
// namespace, and every packet crosses the veth (not a loopback shortcut).
const (
	nsServerIf = "nbs0"
	nsClientIf = "nbc0"
	nsServerIP = "10.79.0.1"
	nsClientIP = "10.79.0.2" // only with nsNetOptions.clientAddr
	nsLeaseIP  = "10.79.0.50"
	nsPrefix   = "/24"
	// nsClientMAC is the client end's MAC, the one the test reserves.
	nsClientMAC = "02:52:46:4e:42:01"
)

// nsNet is a pair of network namespaces of the test's own.
type nsNet struct {
	server, client string // namespace names
}

// requireRealClients skips the test (fails it when CI is set: CI installs
// the packages and runs as root) unless it runs as root with ip and every
// named binary on PATH.
func requireRealClients(t *testing.T, binaries ...string) {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("real-client test cannot run in CI: "+format, args...)
		}
		t.Skipf("real-client test skipped: "+format, args...)
	}
	if os.Geteuid() != 0 {
		unavailable("needs root (creates network namespaces and a veth pair)")
	}
	for _, b := range append([]string{"ip"}, binaries...) {
		if _, err := exec.LookPath(b); err != nil {
			unavailable("%s not found (Debian packages: iproute2, busybox-static, isc-dhcp-client, isc-dhcp-relay, tftp-hpa, curl)", b)
		}
	}
}

// newNSNet creates the two namespaces, the veth pair between them (server
// end nsServerIf with nsServerIP and a default route, so DHCP replies to
// 255.255.255.255 have a way out; client end nsClientIf with MAC
// nsClientMAC and, when clientAddr, nsClientIP). Cleanup deletes both
// namespaces (and so the veth pair).
func newNSNet(t *testing.T, clientAddr bool) *nsNet {
	t.Helper()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	n := &nsNet{server: "rfnb-" + hex.EncodeToString(suffix)}
	n.client = n.server + "-c"
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", n.server)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.server).Run() })
	ip("netns", "add", n.client)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.client).Run() })
	ip("-n", n.server, "link", "add", nsServerIf, "type", "veth", "peer", "name", nsClientIf, "netns", n.client)
	ip("-n", n.client, "link", "set", nsClientIf, "address", nsClientMAC)
	ip("-n", n.server, "addr", "add", nsServerIP+nsPrefix, "dev", nsServerIf)
	if clientAddr {
		ip("-n", n.client, "addr", "add", nsClientIP+nsPrefix, "dev", nsClientIf)
	}
	for _, ns := range []string{n.server, n.client} {
		ip("-n", ns, "link", "set", "lo", "up")
	}
	ip("-n", n.server, "link", "set", nsServerIf, "up")
	ip("-n", n.client, "link", "set", nsClientIf, "up")
	ip("-n", n.server, "route", "add", "default", "dev", nsServerIf)
	// Wait for the veth to carry traffic (IPv4 needs no DAD; a short bound).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("ip", "-n", n.client, "-o", "link", "show", nsClientIf).Output()
		if bytes.Contains(out, []byte("state UP")) || time.Now().After(deadline) {
			break
		}
	}
	return n
}

// clientCmd builds a command that runs in the client namespace.
func (n *nsNet) clientCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.client, name}, args...)...)
}

// nsService is a Service running with its sockets in the server namespace.
type nsService struct {
	svc  *Service
	log  *syncBuffer
	stop func() // idempotent; also run at test cleanup
}

// startService runs a Service for cfg with its sockets in the server
// namespace: a goroutine locked to an OS thread enters the namespace and
// calls Run there (Run binds every socket synchronously before serving, so
// they stay in the namespace whatever thread serves them later). The thread
// is never unlocked: it dies with the goroutine. Only servers that touch
// the network only through the sockets Run bound may run this way: DHCP
// does; TFTP does not (see startTFTPHelper). cfg.Logger is replaced by one
// that writes to the test log and to nsService.log.
func (n *nsNet) startService(t *testing.T, cfg Config) *nsService {
	t.Helper()
	ns := &nsService{log: &syncBuffer{}}
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), ns.log), &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ns.svc = svc
	handle, err := netns.GetFromName(n.server)
	if err != nil {
		t.Fatalf("namespace %s: %v", n.server, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	entered := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread's namespace differs from every other's
		err := netns.Set(handle)
		handle.Close()
		entered <- err
		if err != nil {
			return
		}
		done <- svc.Run(ctx)
	}()
	if err := <-entered; err != nil {
		cancel()
		t.Fatalf("entering namespace %s: %v", n.server, err)
	}
	ns.stop = awaitRunning(t, svc, cancel, done)
	t.Cleanup(ns.stop)
	return ns
}

// helperEnvTFTPRoot, set in the environment of the test binary, makes
// TestNetbootNSHelper serve that directory over TFTP, in single-port mode
// when helperEnvTFTPSingle is "1" too, with sender anticipation when
// helperEnvTFTPAnticipate is a window (see startTFTPHelper).
const (
	helperEnvTFTPRoot       = "RACKFLOW_NETBOOT_HELPER_TFTP_ROOT"
	helperEnvTFTPSingle     = "RACKFLOW_NETBOOT_HELPER_TFTP_SINGLE"
	helperEnvTFTPAnticipate = "RACKFLOW_NETBOOT_HELPER_TFTP_ANTICIPATE"
)

// tftpMode is how the TFTP helper serves: Config.TFTPSinglePort and
// Config.TFTPAnticipate.
type tftpMode struct {
	singlePort bool
	anticipate uint
}

// startTFTPHelper serves root over TFTP on nsServerIP:69 from a process that
// lives wholly inside the server namespace, as a production service would:
// the test binary run again (ip netns exec) as TestNetbootNSHelper.
// startService cannot host TFTP faithfully: with a port per transfer
// (TFTPSinglePort false) pin/tftp opens each transfer's socket from
// whatever thread serves it, i.e. in the host's namespace; in single-port
// mode it looks the receiving interface's MTU up by index (net.
// InterfaceByIndex) from such a thread too, i.e. among the host's
// interfaces, which caps blksize by the wrong MTU. The helper's log goes to
// the returned buffer; cleanup closes its stdin, which stops it.
func (n *nsNet) startTFTPHelper(t *testing.T, root string, mode tftpMode) *syncBuffer {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.server, os.Args[0], "-test.run=^TestNetbootNSHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnvTFTPRoot+"="+root,
		helperEnvTFTPAnticipate+"="+strconv.FormatUint(uint64(mode.anticipate), 10))
	if mode.singlePort {
		cmd.Env = append(cmd.Env, helperEnvTFTPSingle+"=1")
	}
	log := &syncBuffer{}
	cmd.Stderr = io.MultiWriter(t.Output(), log)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			if sc.Text() == "netboot-helper ready" && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		waited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-waited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
			t.Error("TFTP helper process did not stop within 30s; killed")
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("TFTP helper process exited before it was ready (its log is above)")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("TFTP helper process not ready after 30s")
	}
	return log
}

// TestNetbootNSHelper is not a test: it is the TFTP server process that
// startTFTPHelper starts inside a namespace, and returns at once otherwise.
func TestNetbootNSHelper(t *testing.T) {
	root := os.Getenv(helperEnvTFTPRoot)
	if root == "" {
		return
	}
	anticipate, err := strconv.ParseUint(os.Getenv(helperEnvTFTPAnticipate), 10, 8)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{
		TFTPAddr:       nsServerIP + ":69",
		TFTPRoot:       root,
		TFTPSinglePort: os.Getenv(helperEnvTFTPSingle) == "1",
		TFTPAnticipate: uint(anticipate),
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	<-svc.Ready()
	if svc.TFTPAddr() == "" {
		t.Fatal(<-done)
	}
	os.Stdout.WriteString("netboot-helper ready\n")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes stdin or exits
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var transferCompleteRE = regexp.MustCompile(`msg="tftp: transfer complete".* file=(\S+) .*datagrams=(\d+)`)

// tftpDatagrams waits up to 3 s for the server's "transfer complete" log
// line of file (the n-th one, 1-based) and returns its datagram count.
func tftpDatagrams(t *testing.T, log *syncBuffer, file string, nth int) int {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		seen := 0
		for _, m := range transferCompleteRE.FindAllStringSubmatch(log.String(), -1) {
			if m[1] != file {
				continue
			}
			if seen++; seen == nth {
				n, _ := strconv.Atoi(m[2])
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server logged no completed transfer #%d of %s", nth, file)
		}
	}
}
