// Command rollout benchmarks a fleet rollout on rackflow's embedded default
// (`go tool task bench:rollout`, or `go run ./dev/bench/rollout`).
//
// One process hosts everything `rackflow dev` hosts — the embedded Temporal
// server (SQLite file in a temporary state dir) and, unless -ui=false, its
// Web UI, the workers, the netboot service (DHCP, TFTP, HTTP, check-in API),
// the dir image store and a virtual rack of Redfish-emulated nodes — all on
// loopback. It then measures, one after the other:
//
//  1. rollout: one Rollout over -racks × -nodes virtual nodes (default
//     10 × 100) through starter.StartRollout and WaitRollout, with the racks'
//     limits from inventory.GenerateVirtual (clones 8, power-ons 8, no
//     stagger, in-flight 64, so the window is 64 nodes per rack);
//  2. plain: the same activity functions called from a plain Go loop on the
//     same nodes (their roots destroyed first), with the same window and
//     per-rack limits enforced in process, without Temporal;
//  3. limits: -limited-nodes nodes (default 100) on one rack with
//     production-like limits (clones 2, power-ons 4, power-on interval
//     -stagger = 5 s, in-flight 16), then as many on another rack with no
//     limits at all (window = every node);
//
// and prints one aligned table of every figure. It exits 1 when any node
// failed or any step went wrong, 2 on bad flags. -quick is a smoke run:
// 2 racks × 50 nodes and 10 nodes for the limits comparison.
//
// Evidence of what limits throughput: every rollout samples the global
// queue's workflow-task backlog (DescribeTaskQueue) every 10 s and splits
// each Provision's time from its history; -profile-dir adds CPU, block and
// mutex profiles and goroutine dumps of the main rollout and the timeline
// of the slowest Provision. -autoscaling-worker is an experiment (a second
// global-queue worker with separate normal and sticky pollers), not what
// `rackflow dev` runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rackflow/rackflow/activities/inventory"
)

// config is the benchmark's parameters (flags).
type config struct {
	racks, nodes int               // main rollout: racks × nodes per rack
	limitedNodes int               // nodes per rack of the limits comparison; 0 skips it
	stagger      time.Duration     // power_on_interval of the production-like rack
	imageSize    int64             // bytes of the demo image
	checkIn      time.Duration     // check-in timeout per boot (rollout and plain loop)
	timeout      time.Duration     // bound of the whole benchmark
	ui           bool              // serve the Web UI on a free port, as `rackflow dev` does
	stateRoot    string            // parent of the temporary state dir
	keep         bool              // keep the state dir
	profileDir   string            // profiles of the main rollout, "" for none
	logLevel     slog.Level        // records at or above it go to stderr
	window       int               // main rollout's window per rack; 0: the racks' in-flight limit
	mainLimits   *inventory.Limits // main racks' limits; nil: GenerateVirtual's
	// autoscalingWorker adds a worker with autoscaling pollers (experiment).
	autoscalingWorker bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the benchmark and returns the exit status: 0 when
// every node of every run was provisioned, 1 otherwise, 2 on bad flags.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "bench rollout:", err)
		return 2
	}
	counter := newLogCounter(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	log := slog.New(counter)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	b, err := startBench(ctx, cfg, log, counter, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench rollout:", err)
		return 1
	}
	runs, err := b.all(ctx)
	printReport(stdout, b, runs)
	b.close()
	if err != nil {
		fmt.Fprintln(stderr, "bench rollout:", err)
		return 1
	}
	for _, r := range runs {
		if r.failed > 0 || r.ok != r.nodes {
			fmt.Fprintf(stderr, "bench rollout: %s: %d of %d nodes failed\n", r.label, r.nodes-r.ok, r.nodes)
			return 1
		}
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("rollout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	quick := fs.Bool("quick", false, "smoke run: 2 racks × 50 nodes, 10 nodes for the limits comparison")
	fs.IntVar(&cfg.racks, "racks", 10, "racks of the main rollout (1…97)")
	fs.IntVar(&cfg.nodes, "nodes", 100, "virtual nodes per rack of the main rollout")
	fs.IntVar(&cfg.window, "window", 0, "main rollout's window per rack (0: the racks' in-flight limit, 64)")
	fs.IntVar(&cfg.limitedNodes, "limited-nodes", 100, "nodes of the limits comparison, one rack each way (0 skips it)")
	fs.DurationVar(&cfg.stagger, "stagger", 5*time.Second, "power-on interval of the production-like rack")
	size := fs.Int("image-size", 64<<10, "bytes of the demo image nodes download")
	fs.DurationVar(&cfg.checkIn, "check-in-timeout", 3*time.Minute, "check-in timeout per boot")
	fs.DurationVar(&cfg.timeout, "timeout", 60*time.Minute, "give up after this long")
	fs.BoolVar(&cfg.ui, "ui", true, "serve the Temporal Web UI on a free port, as rackflow dev does")
	fs.StringVar(&cfg.stateRoot, "state-root", "", "parent of the temporary state dir (default $TMPDIR)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the state dir (Temporal database, images, inventory)")
	fs.StringVar(&cfg.profileDir, "profile-dir", "", "write CPU, block and mutex profiles and goroutine dumps of the main rollout here")
	level := fs.String("log-level", "error", "stderr log level: debug, info, warn, error")
	fs.BoolVar(&cfg.autoscalingWorker, "autoscaling-worker", false, "experiment, not what rackflow dev runs: add a global-queue worker whose autoscaling pollers poll the normal and sticky queues separately")
	limits := fs.String("limits", "", "main racks' limits as clones/power-ons/stagger/in-flight, e.g. 64/64/0s/64 (0: unlimited); default GenerateVirtual's 8/8/0s/64")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["racks"] {
			cfg.racks = 2
		}
		if !set["nodes"] {
			cfg.nodes = 50
		}
		if !set["limited-nodes"] {
			cfg.limitedNodes = 10
		}
	}
	cfg.imageSize = int64(*size)
	if *limits != "" {
		l, err := parseLimits(*limits)
		if err != nil {
			return cfg, err
		}
		cfg.mainLimits = &l
	}
	if err := cfg.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return cfg, fmt.Errorf("-log-level %q: %w", *level, err)
	}
	switch {
	case cfg.racks < 1 || cfg.racks > 97:
		return cfg, fmt.Errorf("-racks %d: want 1…97 (two more racks hold the limits comparison)", cfg.racks)
	case cfg.nodes < 1 || cfg.nodes > 65000:
		return cfg, fmt.Errorf("-nodes %d: want 1…65000", cfg.nodes)
	case cfg.limitedNodes < 0 || cfg.limitedNodes > 65000:
		return cfg, fmt.Errorf("-limited-nodes %d: want 0…65000", cfg.limitedNodes)
	case cfg.window < 0:
		return cfg, fmt.Errorf("-window %d: must not be negative", cfg.window)
	case cfg.stagger < 0:
		return cfg, fmt.Errorf("-stagger %s: must not be negative", cfg.stagger)
	case cfg.imageSize < 1024:
		return cfg, fmt.Errorf("-image-size %d: want at least 1024 bytes", cfg.imageSize)
	case cfg.checkIn <= 0 || cfg.timeout <= 0:
		return cfg, errors.New("-check-in-timeout and -timeout must be positive")
	}
	return cfg, nil
}

// parseLimits reads "clones/power-ons/stagger/in-flight", e.g. "8/8/0s/64".
func parseLimits(s string) (inventory.Limits, error) {
	f := strings.Split(s, "/")
	if len(f) != 4 {
		return inventory.Limits{}, fmt.Errorf("-limits %q: want clones/power-ons/stagger/in-flight, e.g. 8/8/0s/64", s)
	}
	var n [3]int
	for i, v := range []string{f[0], f[1], f[3]} {
		x, err := strconv.Atoi(v)
		if err != nil || x < 0 {
			return inventory.Limits{}, fmt.Errorf("-limits %q: %q is not a count", s, v)
		}
		n[i] = x
	}
	stagger, err := time.ParseDuration(f[2])
	if err != nil || stagger < 0 {
		return inventory.Limits{}, fmt.Errorf("-limits %q: %q is not a duration", s, f[2])
	}
	return inventory.Limits{Clones: n[0], PowerOns: n[1], PowerOnInterval: inventory.Duration(stagger), InFlight: n[2]}, nil
}

// all runs the three parts in order and returns the runs measured so far
// (also on error).
func (b *bench) all(ctx context.Context) ([]*runStats, error) {
	var runs []*runStats
	stopProfile, err := b.startProfiles(ctx)
	if err != nil {
		return runs, err
	}
	main, err := b.rollout(ctx, rolloutSpec{
		label: "rollout", racks: b.layout.main, window: b.cfg.window,
	})
	stopProfile()
	if main != nil {
		runs = append(runs, main)
	}
	if err != nil {
		return runs, fmt.Errorf("main rollout: %w", err)
	}
	if err := b.resetRoots(ctx, b.layout.mainNodes); err != nil {
		return runs, err
	}
	plain, err := b.plain(ctx, "plain loop", b.layout.main, b.cfg.window)
	if plain != nil {
		runs = append(runs, plain)
	}
	if err != nil {
		return runs, fmt.Errorf("plain loop: %w", err)
	}
	if b.cfg.limitedNodes == 0 {
		return runs, nil
	}
	limited, err := b.rollout(ctx, rolloutSpec{label: "prod limits", racks: []string{b.layout.limited}})
	if limited != nil {
		runs = append(runs, limited)
	}
	if err != nil {
		return runs, fmt.Errorf("rollout with production-like limits: %w", err)
	}
	free, err := b.rollout(ctx, rolloutSpec{label: "no limits", racks: []string{b.layout.unlimited}, window: b.cfg.limitedNodes})
	if free != nil {
		runs = append(runs, free)
	}
	if err != nil {
		return runs, fmt.Errorf("rollout without limits: %w", err)
	}
	return runs, nil
}
