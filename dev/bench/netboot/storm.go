package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/rackflow/rackflow/netboot"
	"github.com/vishvananda/netlink"
)

// stormResult is the boot storm's outcome (JSON on the role's stdout).
type stormResult struct {
	Clients, Failed int
	Seconds         float64 // first client's start to last client's finish
	StartSpread     float64 // first to last client's start, seconds
	Bytes           int64   // TFTP + script + artifact bytes received by all clients
	Slowest         float64 // one client's longest boot, seconds
	Errors          []string
}

// stormRole boots -clients simulated PXE clients (MACs macOf(i)), their
// starts spread evenly over -spread, each as a BIOS PXE ROM chaining to
// iPXE does:
//
//  1. DHCP DORA with option 93 = 0 (BIOS) → address, next-server, boot file;
//     the address is then added to the client interface, as the ROM uses it;
//  2. TFTP of the boot file from next-server (curl --interface <address>,
//     blksize 1468);
//  3. DHCP DORA again as iPXE (option 77 user class "iPXE") → the HTTP URL
//     of the client's script;
//  4. HTTP GET of the script, then of the kernel it names (net/http from
//     the client's address), every byte counted.
//
// A client fails on any error or short transfer. It prints a stormResult.
func stormRole(args []string) error {
	fs := flag.NewFlagSet(roleStorm, flag.ContinueOnError)
	clients := fs.Int("clients", 256, "simulated clients")
	spread := fs.Duration("spread", time.Second, "clients start evenly within this time")
	bootSize := fs.Int64("boot-file-size", 0, "expected TFTP boot file size")
	kernelSize := fs.Int64("kernel-size", 0, "expected kernel size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	link, err := netlink.LinkByName(clientIf)
	if err != nil {
		return err
	}
	dhcp, err := newDORAClient(clientIf, time.Second, 5)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	type outcome struct {
		start, end time.Time
		bytes      int64
		err        error
	}
	out := make([]outcome, *clients)
	var dhcpDone, all sync.WaitGroup
	t0 := time.Now()
	for i := range *clients {
		dhcpDone.Add(1)
		all.Add(1)
		go func() {
			defer all.Done()
			time.Sleep(time.Until(t0.Add(*spread * time.Duration(i) / time.Duration(*clients))))
			o := &out[i]
			o.start = time.Now()
			o.bytes, o.err = bootClient(ctx, dhcp, link, i, *bootSize, *kernelSize, dhcpDone.Done)
			o.end = time.Now()
			if o.err != nil {
				o.err = fmt.Errorf("%w (%.1f s after its start)", o.err, o.end.Sub(o.start).Seconds())
			}
		}()
	}
	// The raw DHCP socket closes once no client needs it any more.
	dhcpDone.Wait()
	_ = dhcp.Close()
	all.Wait()

	res := stormResult{Clients: *clients}
	first, lastStart, last := out[0].start, out[0].start, out[0].end
	for _, o := range out {
		if o.start.Before(first) {
			first = o.start
		}
		if o.start.After(lastStart) {
			lastStart = o.start
		}
		if o.end.After(last) {
			last = o.end
		}
		res.Slowest = max(res.Slowest, o.end.Sub(o.start).Seconds())
		res.Bytes += o.bytes
		if o.err != nil {
			res.Failed++
			if len(res.Errors) < 5 {
				res.Errors = append(res.Errors, o.err.Error())
			}
		}
	}
	res.Seconds, res.StartSpread = last.Sub(first).Seconds(), lastStart.Sub(first).Seconds()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// bootClient boots simulated client i; dhcpFinished is called once (on
// every path) when it needs DHCP no more. It returns the bytes it fetched.
func bootClient(ctx context.Context, dhcp *doraClient, link netlink.Link, i int, bootSize, kernelSize int64, dhcpFinished func()) (int64, error) {
	dhcpOnce := sync.OnceFunc(dhcpFinished)
	defer dhcpOnce()
	mac := macOf(i)
	bios := dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))
	ack, err := dhcp.dora(ctx, mac, bios)
	if err != nil {
		return 0, fmt.Errorf("client %d: PXE DHCP: %w", i, err)
	}
	ip, next, file := ack.YourIPAddr.To4(), ack.ServerIPAddr.To4(), ack.BootFileName
	if ip == nil || next == nil || file == "" {
		return 0, fmt.Errorf("client %d: PXE ACK without address, next-server or boot file: %s", i, ack.Summary())
	}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(16, 32)}}); err != nil {
		return 0, fmt.Errorf("client %d: add %s: %w", i, ip, err)
	}

	out, err := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "300", "--interface", ip.String(),
		"--tftp-blksize", "1468", "-o", "/dev/null", "-w", "%{size_download}",
		"tftp://"+next.String()+"/"+file).Output()
	if err != nil {
		return 0, fmt.Errorf("client %d: TFTP %s: %w: %s", i, file, err, exitStderr(err))
	}
	got, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || got != bootSize {
		return got, fmt.Errorf("client %d: TFTP %s: %s bytes, want %d", i, file, out, bootSize)
	}
	total := got

	ack, err = dhcp.dora(ctx, mac, bios, dhcpv4.WithUserClass("iPXE", false))
	dhcpOnce()
	if err != nil {
		return total, fmt.Errorf("client %d: iPXE DHCP: %w", i, err)
	}
	script := ack.BootFileName
	if !strings.HasPrefix(script, "http://") {
		return total, fmt.Errorf("client %d: iPXE ACK boot file %q is not an HTTP URL", i, script)
	}
	hc := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}).DialContext}}
	defer hc.CloseIdleConnections()
	var kernel string
	n, err := httpGet(ctx, hc, script, func(r io.Reader) error {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "kernel" {
				kernel = f[1]
			}
		}
		return sc.Err()
	})
	total += n
	if err != nil {
		return total, fmt.Errorf("client %d: script: %w", i, err)
	}
	if kernel == "" {
		return total, fmt.Errorf("client %d: script %s names no kernel", i, script)
	}
	n, err = httpGet(ctx, hc, kernel, nil)
	total += n
	if err != nil {
		return total, fmt.Errorf("client %d: kernel: %w", i, err)
	}
	if n != kernelSize {
		return total, fmt.Errorf("client %d: kernel %s: %d bytes, want %d", i, kernel, n, kernelSize)
	}
	return total, nil
}

// httpGet fetches url, passing the body to read (nil: discard) and
// counting its bytes; a status other than 200 is an error.
func httpGet(ctx context.Context, hc *http.Client, url string, read func(io.Reader) error) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	cr := &countingReader{r: resp.Body}
	if read != nil {
		err = read(cr)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, cr)
	}
	return cr.n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// stormReport is the boot-storm part of the table.
type stormReport struct {
	result     stormResult
	rateMbit   int     // server egress shaping, 0 = unshaped
	refMbit    int     // the link speed N·F is divided by: rateMbit, or referenceMbit when unshaped
	perClient  int64   // F: bytes one client fetches
	idealSecs  float64 // N·F / refMbit
	kernelSize int64
}

// benchStorm boots clients simulated clients against rackflow, its egress
// shaped to rateMbit Mbit/s (tc tbf; 0 leaves the veth unshaped), each
// fetching the boot file and a kernelSize-byte kernel.
func benchStorm(ctx context.Context, n *testNet, work string, clients int, kernelSize, bootSize int64, rateMbit int, stderr io.Writer) (stormReport, error) {
	rep := stormReport{rateMbit: rateMbit, kernelSize: kernelSize}
	store, err := netboot.OpenStore(filepath.Join(work, "store"))
	if err != nil {
		return rep, err
	}
	for i := range clients {
		if err := store.Put(netboot.Profile{MAC: macOf(i).String(), Node: fmt.Sprintf("n%05d", i),
			Mode: netboot.ModeInstall, Kernel: stormKernel, Args: []string{"console=ttyS0"}}); err != nil {
			return rep, err
		}
	}
	// Debug: the storm's log has every HTTP request and TFTP transfer.
	srv, err := startRackflow(ctx, n, work, "storm", clients, stderr, "-debug")
	if err != nil {
		return rep, err
	}
	defer func() { _ = srv.stop() }()
	if rateMbit > 0 {
		if err := n.shape(ctx, fmt.Sprintf("%dmbit", rateMbit)); err != nil {
			return rep, err
		}
		defer func() { _ = n.shape(context.WithoutCancel(ctx), "") }()
	}
	out, err := runRoleOnce(ctx, n.client, roleStorm, stderr, "-clients", strconv.Itoa(clients),
		"-boot-file-size", strconv.FormatInt(bootSize, 10), "-kernel-size", strconv.FormatInt(kernelSize, 10))
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(out, &rep.result); err != nil {
		return rep, fmt.Errorf("boot storm output %q: %w", out, err)
	}
	if rep.result.Clients > 0 {
		rep.perClient = rep.result.Bytes / int64(rep.result.Clients)
	}
	rep.refMbit = rateMbit
	if rep.refMbit == 0 {
		rep.refMbit = referenceMbit
	}
	rep.idealSecs = float64(int64(clients)*rep.perClient) * 8 / (float64(rep.refMbit) * 1e6)
	if rep.result.Failed > 0 {
		return rep, fmt.Errorf("boot storm: %d of %d clients failed: %s", rep.result.Failed, clients,
			strings.Join(rep.result.Errors, "; "))
	}
	return rep, nil
}

// referenceMbit is the link speed an unshaped storm is compared with: a
// rack's 1 Gbit/s provisioning network.
const referenceMbit = 1000

// stormKernel is the artifact every storm client's script names.
const stormKernel = "storm-kernel.img"
