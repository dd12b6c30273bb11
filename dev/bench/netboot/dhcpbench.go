package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// dhcpLoad is the load generator's result (JSON on its stdout).
type dhcpLoad struct {
	OK, Failed int
	Seconds    float64  // first DISCOVER to last ACK
	P50, P99   float64  // DORA latency, seconds
	Errors     []string // the first few failures
}

// dhcpLoadRole runs -macs full DORA exchanges, MACs macOf(0..macs-1), at
// most -concurrency in flight, over one doraClient on -iface; it prints a
// dhcpLoad.
func dhcpLoadRole(args []string) error {
	fs := flag.NewFlagSet(roleDHCP, flag.ContinueOnError)
	macs := fs.Int("macs", 1024, "distinct client MACs, one DORA each")
	concurrency := fs.Int("concurrency", 64, "exchanges in flight")
	timeout := fs.Duration("timeout", time.Second, "retransmission timeout per message")
	tries := fs.Int("tries", 4, "sends per message")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := newDORAClient(clientIf, *timeout, *tries)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	lat := make([]time.Duration, *macs)
	errs := make([]error, *macs)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= *macs {
					return
				}
				t0 := time.Now()
				_, errs[i] = c.dora(ctx, macOf(i))
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	res := dhcpLoad{Seconds: time.Since(start).Seconds()}
	var ok []time.Duration
	for i, err := range errs {
		if err != nil {
			res.Failed++
			if len(res.Errors) < 5 {
				res.Errors = append(res.Errors, err.Error())
			}
			continue
		}
		res.OK++
		ok = append(ok, lat[i])
	}
	res.P50, res.P99 = quantile(ok, 0.50).Seconds(), quantile(ok, 0.99).Seconds()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// quantile returns the q-quantile (nearest rank) of ds, 0 when empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// runDHCPLoad runs the load generator in the client namespace.
func runDHCPLoad(ctx context.Context, n *testNet, macs, concurrency int, stderr io.Writer) (dhcpLoad, error) {
	var res dhcpLoad
	out, err := runRoleOnce(ctx, n.client, roleDHCP, stderr, "-macs", fmt.Sprint(macs), "-concurrency", fmt.Sprint(concurrency))
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("load generator output %q: %w", out, err)
	}
	return res, nil
}

// runRoleOnce runs role to completion in namespace ns and returns its
// stdout.
func runRoleOnce(ctx context.Context, ns, role string, stderr io.Writer, args ...string) ([]byte, error) {
	cmd, err := roleCmd(ctx, ns, role, stderr, args...)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w", role, err)
	}
	return out, nil
}

// dhcpComparison is the DHCP part of the table.
type dhcpComparison struct {
	macs, concurrency int
	rackflow          dhcpLoad
	dnsmasq           dhcpLoad // as deployed: lease database file, rewritten per lease
	dnsmasqNoLeaseDB  dhcpLoad // --leasefile-ro: no lease database, as rackflow's reservation mode
}

// benchDHCP measures rackflow's DHCP server, then dnsmasq's twice (with its
// lease database, and without it), each freshly started in the server
// namespace with a reservation for every simulated MAC (dnsmasq:
// --dhcp-hostsfile, a static range; all hand out a boot file), with the same
// load generator and MACs.
func benchDHCP(ctx context.Context, n *testNet, work string, macs, concurrency int, stderr io.Writer) (dhcpComparison, error) {
	cmp := dhcpComparison{macs: macs, concurrency: concurrency}
	srv, err := startRackflow(ctx, n, work, "dhcp", macs, stderr)
	if err != nil {
		return cmp, err
	}
	cmp.rackflow, err = runDHCPLoad(ctx, n, macs, concurrency, stderr)
	if serr := srv.stop(); err == nil && serr != nil {
		err = fmt.Errorf("rackflow server: %w", serr)
	}
	if err != nil {
		return cmp, err
	}
	var hosts strings.Builder
	for i := range macs {
		fmt.Fprintf(&hosts, "%s,%s\n", macOf(i), ipOf(i))
	}
	hostsFile := filepath.Join(work, "dnsmasq-hosts")
	if err := os.WriteFile(hostsFile, []byte(hosts.String()), 0o644); err != nil {
		return cmp, err
	}
	if cmp.dnsmasq, err = dnsmasqLoad(ctx, n, filepath.Join(work, "dnsmasq"), hostsFile, false, macs, concurrency, stderr); err != nil {
		return cmp, err
	}
	cmp.dnsmasqNoLeaseDB, err = dnsmasqLoad(ctx, n, filepath.Join(work, "dnsmasq-leasefile-ro"), hostsFile, true, macs, concurrency, stderr)
	return cmp, err
}

// dnsmasqLoad runs dnsmasq (its files in dir; noLeaseDB: --leasefile-ro)
// in the server namespace under the load generator.
func dnsmasqLoad(ctx context.Context, n *testNet, dir, hostsFile string, noLeaseDB bool, macs, concurrency int, stderr io.Writer) (dhcpLoad, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return dhcpLoad{}, err
	}
	args := []string{"--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=" + serverIf, "--bind-interfaces", "--user=root", "--group=root", "--pid-file=",
		"--dhcp-range=10.80.0.0,static,255.255.0.0,1h", "--dhcp-hostsfile=" + hostsFile,
		"--dhcp-boot=undionly.kpxe,," + serverIP,
		// --dhcp-lease-max: dnsmasq's default of 1000 would NAK the rest.
		"--dhcp-authoritative", "--no-ping", fmt.Sprintf("--dhcp-lease-max=%d", macs+16), "--log-facility=" + filepath.Join(dir, "dnsmasq.log")}
	if noLeaseDB {
		args = append(args, "--leasefile-ro")
	} else {
		args = append(args, "--dhcp-leasefile="+filepath.Join(dir, "leases"))
	}
	dnsmasq := cmdIn(ctx, n.server, "dnsmasq", args...)
	// dnsmasq logs every DHCP message to stderr too in --no-daemon mode.
	errLog, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return dhcpLoad{}, err
	}
	defer errLog.Close()
	dnsmasq.Stderr = errLog
	if err := dnsmasq.Start(); err != nil {
		return dhcpLoad{}, fmt.Errorf("dnsmasq: %w", err)
	}
	defer func() {
		_ = dnsmasq.Process.Kill()
		_ = dnsmasq.Wait()
	}()
	if err := waitUDPListener(ctx, n.server, ":67"); err != nil {
		return dhcpLoad{}, fmt.Errorf("dnsmasq: %w", err)
	}
	return runDHCPLoad(ctx, n, macs, concurrency, stderr)
}

// waitUDPListener waits up to 10 s for a UDP socket on addr ("ip:port" or
// ":port") in namespace ns (ss from iproute2).
func waitUDPListener(ctx context.Context, ns string, addr string) error {
	want := addr + " "
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ := cmdIn(ctx, ns, "ss", "-Hlun").Output()
		if strings.Contains(string(out), want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on UDP %s after 10s", addr)
		}
	}
}
