// Command netboot benchmarks rackflow's netboot service against the
// servers it replaces (`go tool task bench:netboot`, or `go run
// ./dev/bench/netboot`; root, Debian packages iproute2, tftpd-hpa,
// dnsmasq-base, curl).
//
// It creates two network namespaces of its own joined by a veth pair (MTU
// 1500, unshaped unless said otherwise), runs every server in the server
// namespace and every client in the client namespace — rackflow's service
// and the load generators as re-executions of this binary inside them —
// and prints one table:
//
//   - TFTP: rackflow vs tftp-hpa's in.tftpd (run directly, --listen
//     --secure over the same root, on a second address of the server end)
//     serving the same file (32 MiB) to the same client, curl, blksize 1468
//     (RFC 2348) negotiated with both: MB/s (10^6 bytes) of one stream
//     (median of 5 runs each, the servers alternating) and of 64 concurrent
//     transfers (curl --parallel), and the ratio rackflow / in.tftpd; both
//     lockstep (RFC 1350). A third column is rackflow with pin/tftp's sender
//     anticipation (8 blocks before waiting for ACKs; the same options
//     negotiated, see netboot.Config.TFTPAnticipate) and its ratio.
//   - DHCP: full DORA exchanges per second, rackflow vs dnsmasq (--no-daemon
//     --conf-file=/dev/null, --dhcp-hostsfile with the same reservations,
//     --no-ping), once with its lease file (as deployed: dnsmasq rewrites it
//     on every new lease) and once with --leasefile-ro (no lease database,
//     like rackflow's reservation mode), the same Go load generator
//     (insomniacslk's dhcpv4 and nclient4 raw socket, see doraClient) with
//     the same distinct MACs (4096, 64 in flight): the rates, the ratios and
//     p50/p99 latency.
//   - Boot storm: 256 simulated clients (distinct MACs) starting within one
//     second, each DHCP → TFTP boot file → DHCP as iPXE → HTTP script → 8
//     MiB kernel (see stormRole): completion time against N·F / 1 Gbit/s
//     (a rack's provisioning link; the veth itself is unshaped), failures.
//     -storm-rate-mbit shapes the server's egress instead (tc tbf with
//     fq_codel inside, as a Debian host queues; a bare tbf FIFO tail-drops
//     DHCP replies behind the bulk HTTP flows, and clients fail).
//
// -quick is a smoke run (4 MiB, 1 and 8 streams; 256 MACs; 16 clients × 1
// MiB). Everything is bounded by -timeout; the namespaces and the
// processes in them are removed at exit, on error and on SIGINT/SIGTERM.
// Exit status: 0 when every part ran without failure, 1 otherwise, 2 on
// bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// config is the benchmark's parameters.
type config struct {
	tftpSize        int64
	tftpBlksize     int
	tftpStreams     []int
	tftpReps        []int // runs per server per entry of tftpStreams (median)
	dhcpMACs        int
	dhcpConcurrency int
	stormClients    int
	stormKernel     int64
	stormRateMbit   int
	timeout         time.Duration
	keep            bool
	parts           map[string]bool // of partNames
}

// partNames are the parts of the benchmark, in the order they run.
var partNames = []string{"tftp", "dhcp", "storm"}

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("bench-netboot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "smoke run: small files, few clients")
	cfg := config{tftpBlksize: 1468}
	fs.IntVar(&cfg.dhcpMACs, "dhcp-macs", 4096, "distinct MACs of the DHCP comparison (one DORA each)")
	fs.IntVar(&cfg.dhcpConcurrency, "dhcp-concurrency", 64, "DORA exchanges in flight")
	fs.IntVar(&cfg.stormClients, "storm-clients", 256, "boot-storm clients")
	fs.IntVar(&cfg.stormRateMbit, "storm-rate-mbit", 0, "server egress limit during the boot storm, Mbit/s (tc tbf + fq_codel; 0: unshaped, compared with 1 Gbit/s)")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Minute, "bound of the whole benchmark")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work directory (server logs)")
	parts := fs.String("parts", strings.Join(partNames, ","), "comma-separated parts to run")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.parts = map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		if !slices.Contains(partNames, p) {
			return cfg, fmt.Errorf("-parts: unknown part %q (want some of %s)", p, strings.Join(partNames, ","))
		}
		cfg.parts[p] = true
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.tftpSize, cfg.tftpStreams, cfg.tftpReps, cfg.stormKernel = 32<<20, []int{1, 64}, []int{5, 1}, 8<<20
	if *quick {
		cfg.tftpSize, cfg.tftpStreams, cfg.tftpReps, cfg.stormKernel = 4<<20, []int{1, 8}, []int{3, 1}, 1<<20
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["dhcp-macs"] {
			cfg.dhcpMACs = 256
		}
		if !set["dhcp-concurrency"] {
			cfg.dhcpConcurrency = 32
		}
		if !set["storm-clients"] {
			cfg.stormClients = 16
		}
	}
	switch {
	case cfg.dhcpMACs < 1 || cfg.dhcpMACs > maxClients:
		return cfg, fmt.Errorf("-dhcp-macs %d: want 1..%d", cfg.dhcpMACs, maxClients)
	case cfg.dhcpConcurrency < 1:
		return cfg, fmt.Errorf("-dhcp-concurrency %d: want >= 1", cfg.dhcpConcurrency)
	case cfg.stormClients < 1 || cfg.stormClients > maxClients:
		return cfg, fmt.Errorf("-storm-clients %d: want 1..%d", cfg.stormClients, maxClients)
	case cfg.stormRateMbit < 0:
		return cfg, fmt.Errorf("-storm-rate-mbit %d: want >= 0", cfg.stormRateMbit)
	case cfg.timeout <= 0:
		return cfg, fmt.Errorf("-timeout %s: want > 0", cfg.timeout)
	}
	return cfg, nil
}

// run parses args, runs the benchmark and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "bench-netboot:", err)
		return 2
	}
	if err := requireTools("ip", "tc", "ss", "curl", "in.tftpd", "dnsmasq"); err != nil {
		fmt.Fprintln(stderr, "bench-netboot:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if err := bench(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "bench-netboot:", err)
		return 1
	}
	return 0
}

// bench sets up the namespaces and files, runs the three parts and prints
// the table (what ran, when a part fails).
func bench(ctx context.Context, cfg config, stdout, stderr io.Writer) (err error) {
	work, err := os.MkdirTemp("", "rackflow-bench-netboot-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintln(stderr, "bench-netboot: work directory", work)
	} else {
		defer os.RemoveAll(work)
	}
	// in.tftpd drops to the tftp user: the tree must be world-readable.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"tftp", "artifacts", "store"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return err
		}
	}
	bootSize, err := placeBootFile(filepath.Join(work, "tftp", "undionly.kpxe"))
	if err != nil {
		return err
	}
	tftpFile := fmt.Sprintf("bench-%dMiB.bin", cfg.tftpSize>>20)
	if err := writeRandomFile(filepath.Join(work, "tftp", tftpFile), cfg.tftpSize, 1); err != nil {
		return err
	}
	if err := writeRandomFile(filepath.Join(work, "artifacts", stormKernel), cfg.stormKernel, 2); err != nil {
		return err
	}

	n, err := newTestNet(ctx)
	if err != nil {
		return err
	}
	defer n.close()

	rep := report{cfg: cfg}
	defer func() { rep.print(stdout) }()
	if cfg.parts["tftp"] {
		fmt.Fprintln(stderr, "bench-netboot: TFTP ...")
		if rep.tftp, err = benchTFTP(ctx, n, work, filepath.Join(work, "tftp"), tftpFile, cfg.tftpSize, cfg.tftpBlksize, cfg.tftpStreams, cfg.tftpReps, stderr); err != nil {
			return fmt.Errorf("TFTP: %w", err)
		}
		rep.tftpDone = true
	}
	if !cfg.parts["dhcp"] {
		return runStorm(ctx, cfg, n, work, bootSize, &rep, stderr)
	}
	fmt.Fprintln(stderr, "bench-netboot: DHCP ...")
	if rep.dhcp, err = benchDHCP(ctx, n, work, cfg.dhcpMACs, cfg.dhcpConcurrency, stderr); err != nil {
		return fmt.Errorf("DHCP: %w", err)
	}
	rep.dhcpDone = true
	for name, l := range map[string]dhcpLoad{"rackflow": rep.dhcp.rackflow, "dnsmasq": rep.dhcp.dnsmasq,
		"dnsmasq --leasefile-ro": rep.dhcp.dnsmasqNoLeaseDB} {
		if l.Failed > 0 {
			err = errors.Join(err, fmt.Errorf("DHCP: %s: %d failed exchanges: %v", name, l.Failed, l.Errors))
		}
	}
	if err != nil {
		return err
	}
	return runStorm(ctx, cfg, n, work, bootSize, &rep, stderr)
}

// runStorm runs the boot storm when cfg asks for it.
func runStorm(ctx context.Context, cfg config, n *testNet, work string, bootSize int64, rep *report, stderr io.Writer) error {
	if !cfg.parts["storm"] {
		return nil
	}
	fmt.Fprintln(stderr, "bench-netboot: boot storm ...")
	var err error
	rep.storm, err = benchStorm(ctx, n, work, cfg.stormClients, cfg.stormKernel, bootSize, cfg.stormRateMbit, stderr)
	rep.stormDone = rep.storm.result.Clients > 0
	if err != nil {
		return fmt.Errorf("boot storm: %w", err)
	}
	return nil
}

// placeBootFile copies Debian's undionly.kpxe (the ipxe package) to path,
// or writes a stand-in of its size when the package is absent; it returns
// the size.
func placeBootFile(path string) (int64, error) {
	if data, err := os.ReadFile("/usr/lib/ipxe/undionly.kpxe"); err == nil {
		return int64(len(data)), os.WriteFile(path, data, 0o644)
	}
	const size = 74213 // Debian 12's undionly.kpxe
	return size, writeRandomFile(path, size, 3)
}

// report is the table.
type report struct {
	cfg                           config
	tftp                          tftpComparison
	dhcp                          dhcpComparison
	storm                         stormReport
	tftpDone, dhcpDone, stormDone bool
}

func (r report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "netboot benchmark: veth pair between two namespaces, MTU %d; MB = 10^6 bytes\n", mtu)
	if r.tftpDone {
		fmt.Fprintf(tw, "TFTP, %d MiB file, curl, blksize %d (median of runs)\trackflow\tin.tftpd (tftp-hpa)\tratio\trackflow, anticipate %d\tratio\n",
			r.tftp.size>>20, r.tftp.blksize, tftpAnticipate)
		for _, p := range r.tftp.points {
			what := "1 stream"
			if p.streams > 1 {
				what = fmt.Sprintf("%d concurrent", p.streams)
			}
			fmt.Fprintf(tw, "  %s, MB/s (%d runs each)\t%.1f\t%.1f\t%.2f\t%.1f\t%.2f\n", what, p.reps, p.rackflow, p.tftpd, p.rackflow/p.tftpd,
				p.anticipate, p.anticipate/p.tftpd)
		}
	}
	if r.dhcpDone {
		rf := r.dhcp.rackflow
		rate := func(l dhcpLoad) float64 { return float64(l.OK) / l.Seconds }
		for _, dm := range []struct {
			name string
			load dhcpLoad
		}{{"dnsmasq (lease file)", r.dhcp.dnsmasq}, {"dnsmasq --leasefile-ro", r.dhcp.dnsmasqNoLeaseDB}} {
			fmt.Fprintf(tw, "DHCP DORA, %d distinct MACs, %d in flight\trackflow\t%s\tratio\n", r.dhcp.macs, r.dhcp.concurrency, dm.name)
			fmt.Fprintf(tw, "  exchanges/s\t%.0f\t%.0f\t%.2f\n", rate(rf), rate(dm.load), rate(rf)/rate(dm.load))
			fmt.Fprintf(tw, "  p50 latency, ms\t%.2f\t%.2f\t\n", rf.P50*1e3, dm.load.P50*1e3)
			fmt.Fprintf(tw, "  p99 latency, ms\t%.2f\t%.2f\t\n", rf.P99*1e3, dm.load.P99*1e3)
			fmt.Fprintf(tw, "  failed exchanges\t%d\t%d\t\n", rf.Failed, dm.load.Failed)
		}
	}
	if r.stormDone {
		s := r.storm
		link := "veth unshaped"
		ref := fmt.Sprintf("N·F / %d Mbit/s (a rack's provisioning link), s", s.refMbit)
		if s.rateMbit > 0 {
			link = fmt.Sprintf("server egress shaped to %d Mbit/s (tc tbf + fq_codel)", s.rateMbit)
			ref = fmt.Sprintf("N·F / %d Mbit/s (the shaped link), s", s.refMbit)
		}
		fmt.Fprintf(tw, "Boot storm, %d clients started within %.2f s, %s\trackflow\t\t\n", s.result.Clients, s.result.StartSpread, link)
		fmt.Fprintf(tw, "  F = boot file + script + %d MiB kernel per client, bytes\t%d\t\t\n", s.kernelSize>>20, s.perClient)
		fmt.Fprintf(tw, "  completion (first start to last kernel byte), s\t%.2f\t\t\n", s.result.Seconds)
		fmt.Fprintf(tw, "  %s\t%.2f\t\t\n", ref, s.idealSecs)
		fmt.Fprintf(tw, "  completion / (N·F / link speed)\t%.2f\t\t\n", s.result.Seconds/s.idealSecs)
		fmt.Fprintf(tw, "  slowest client, s\t%.2f\t\t\n", s.result.Slowest)
		fmt.Fprintf(tw, "  failed clients\t%d\t\t\n", s.result.Failed)
	}
}
