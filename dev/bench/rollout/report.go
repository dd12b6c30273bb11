package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// printReport writes the table of every run, the derived figures and what
// the stack logged.
func printReport(w io.Writer, b *bench, runs []*runStats) {
	fmt.Fprintf(w, "\nrackflow rollout benchmark — %s, %s, GOMAXPROCS %d, %d CPUs\n",
		time.Now().UTC().Format(time.RFC3339), runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(w, "One process hosts what `rackflow dev` hosts: embedded Temporal (SQLite file in a temp state dir, WAL, 1 connection, 1 shard)%s,\n", map[bool]string{true: " + Web UI", false: ""}[b.cfg.ui])
	nodes := len(b.layout.mainNodes) + 2*b.cfg.limitedNodes
	fmt.Fprintf(w, "workers (global + one queue per rack), netboot (DHCP, TFTP, HTTP, check-in), dir image store (%d-byte image), %d Redfish-emulated virtual nodes.\n", b.cfg.imageSize, nodes)
	fmt.Fprintf(w, "Start-up of all that: %s. Everything on loopback.\n", fmtDur(b.startup))
	if b.cfg.autoscalingWorker {
		fmt.Fprintln(w, "EXPERIMENT: plus a second global-queue worker with autoscaling pollers (separate normal and sticky pollers).")
	}
	fmt.Fprintln(w)
	if len(runs) == 0 {
		fmt.Fprintln(w, "no run completed")
		return
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(r *runStats) string) {
		cells := []string{name}
		for _, r := range runs {
			cells = append(cells, f(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	rollouts := func(f func(r *runStats) string) func(r *runStats) string {
		return func(r *runStats) string {
			if r.kind != kindRollout {
				return "—"
			}
			return f(r)
		}
	}
	plain := findRun(runs, kindPlain, "")
	main := findRun(runs, kindRollout, "rollout")

	row("figure", func(r *runStats) string { return r.label })
	row("how", func(r *runStats) string {
		if r.kind == kindPlain {
			return "Go loop, same activities"
		}
		return "Rollout→RackRollout→Provision"
	})
	row("nodes (racks)", func(r *runStats) string { return fmt.Sprintf("%d (%d)", r.nodes, r.racks) })
	row("rack limits: clones/power-ons/stagger/in-flight", func(r *runStats) string { return compactLimits(r.limits) })
	row("window per rack", func(r *runStats) string { return fmt.Sprint(r.window) })
	row("provisioned / failed", func(r *runStats) string { return fmt.Sprintf("%d / %d", r.ok, r.failed) })
	row("wall time", func(r *runStats) string { return fmtDur(r.wall) })
	row("nodes per minute", func(r *runStats) string {
		if r.wall <= 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f", float64(r.ok)/r.wall.Minutes())
	})
	row("wall ÷ plain loop (price of durability)", func(r *runStats) string {
		if plain == nil || r.kind == kindPlain || r.nodes != plain.nodes || plain.wall <= 0 {
			return "—"
		}
		return fmt.Sprintf("×%.2f", r.wall.Seconds()/plain.wall.Seconds())
	})
	row(fmt.Sprintf("process CPU (share of %d cores)", runtime.NumCPU()), func(r *runStats) string {
		if r.wall <= 0 {
			return "—"
		}
		return fmt.Sprintf("%s (%.0f%%)", fmtDur(r.cpu), 100*r.cpu.Seconds()/(r.wall.Seconds()*float64(runtime.NumCPU())))
	})
	row("machine CPU busy, all processes", func(r *runStats) string { return fmt.Sprintf("%.0f%%", 100*r.machineBusy) })
	row("per-node time: mean", func(r *runStats) string { return fmtDur(mean(r.perNode)) })
	row("  p50 / p95 / max", func(r *runStats) string {
		return fmt.Sprintf("%s / %s / %s", fmtDur(percentile(r.perNode, .5)), fmtDur(percentile(r.perNode, .95)), fmtDur(percentile(r.perNode, 1)))
	})
	row("  activity execution", func(r *runStats) string { return fmtDur(r.parts.exec) })
	row("  activity schedule-to-start", rollouts(func(r *runStats) string { return fmtDur(r.parts.queue) }))
	row("  permit / in-process limit wait", func(r *runStats) string { return fmtDur(r.parts.limitWait) })
	row("    in-flight / clone / power-on", func(r *runStats) string {
		return fmt.Sprintf("%s / %s / %s", fmtDur(r.parts.waitIn), fmtDur(r.parts.waitClone), fmtDur(r.parts.waitPower))
	})
	row("  power-cycle → check-in", func(r *runStats) string { return fmtDur(r.parts.boot) })
	row("  rest (workflow tasks, signals, start/close)", func(r *runStats) string { return fmtDur(r.parts.rest) })
	row("    of which workflow-task schedule-to-start", rollouts(func(r *runStats) string { return fmtDur(r.parts.wfTask) }))
	row("workflow tasks per Provision", rollouts(func(r *runStats) string {
		if len(r.perNode) == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f", float64(r.parts.wfTasks)/float64(len(r.perNode)))
	}))
	row("  first task's schedule-to-start: mean", rollouts(func(r *runStats) string { return fmtDur(r.parts.firstWFT) }))
	row("  schedule-to-start per task: mean / max", rollouts(func(r *runStats) string {
		if r.parts.wfTasks == 0 {
			return "—"
		}
		return fmt.Sprintf("%s / %s", fmtDur(r.parts.wfTask*time.Duration(len(r.perNode))/time.Duration(r.parts.wfTasks)), fmtDur(r.parts.wfTaskMax))
	}))
	row("global queue: max workflow-task backlog", rollouts(func(r *runStats) string {
		if r.queueMax.backlog == 0 && r.queueMax.age == 0 {
			return "0"
		}
		return fmt.Sprintf("%d (oldest %s)", r.queueMax.backlog, fmtDur(r.queueMax.age))
	}))
	row("boots beyond the first", func(r *runStats) string { return fmt.Sprint(r.extraBoots) })
	row("check-in answers", func(r *runStats) string {
		if r.kind == kindRollout {
			return "202 (signal)"
		}
		var parts []string
		for _, code := range sortedKeys(r.checkInHTTP) {
			parts = append(parts, fmt.Sprintf("%d×%d", code, r.checkInHTTP[code]))
		}
		return strings.Join(parts, " ")
	})
	row("largest history: events", rollouts(func(r *runStats) string { return fmt.Sprint(r.largest.events) }))
	row("  in run", rollouts(func(r *runStats) string { return r.largest.typ + " " + r.largest.id }))
	for _, typ := range []string{"Rollout", "RackRollout", "Provision", "RackLimiter"} {
		row(fmt.Sprintf("  max events of a %s run", typ), rollouts(func(r *runStats) string {
			if h, ok := r.maxByType[typ]; ok {
				return fmt.Sprint(h.events)
			}
			return "none"
		}))
	}
	row("runs (continued as new)", rollouts(func(r *runStats) string {
		var parts []string
		for _, typ := range sortedKeys(r.runsByType) {
			parts = append(parts, fmt.Sprintf("%s %d (%d)", abbrev(typ), r.runsByType[typ], r.canByType[typ]))
		}
		return strings.Join(parts, ", ")
	}))
	row("peak RSS (VmHWM) at end of run", func(r *runStats) string { return fmtKB(r.rssPeakKB) })
	row("RSS (VmRSS) at end of run", func(r *runStats) string { return fmtKB(r.rssKB) })
	row("open handles on temporal.db", func(r *runStats) string { return fmt.Sprint(r.dbConns) })
	row("warnings + errors logged", func(r *runStats) string {
		n := 0
		for _, l := range r.logs {
			n += l.n
		}
		return fmt.Sprint(n)
	})
	_ = tw.Flush()

	fmt.Fprintln(w)
	if main != nil && plain != nil && main.nodes > 0 {
		fmt.Fprintf(w, "price of durability: rollout wall ÷ plain-loop wall = %s ÷ %s = ×%.2f\n",
			fmtDur(main.wall), fmtDur(plain.wall), main.wall.Seconds()/plain.wall.Seconds())
		fmt.Fprintf(w, "orchestration overhead per node, amortised: (rollout wall − plain wall) ÷ nodes = %s\n",
			fmtDur((main.wall-plain.wall)/time.Duration(main.nodes)))
		fmt.Fprintf(w, "orchestration overhead per node, latency: mean Provision (visibility close − start) − mean plain-loop node = %s − %s = %s\n",
			fmtDur(mean(main.perNode)), fmtDur(mean(plain.perNode)), fmtDur(mean(main.perNode)-mean(plain.perNode)))
		fmt.Fprintf(w, "  per Provision (history): activities run %s (plain %s), wait for a worker %s, permits %s (plain slots %s), workflow tasks/signals/rest %s\n",
			fmtDur(main.parts.exec), fmtDur(plain.parts.exec), fmtDur(main.parts.queue), fmtDur(main.parts.limitWait), fmtDur(plain.parts.limitWait), fmtDur(main.parts.rest))
	}
	if lim, free := findRun(runs, kindRollout, "prod limits"), findRun(runs, kindRollout, "no limits"); lim != nil && free != nil && free.wall > 0 {
		fmt.Fprintf(w, "effect of production-like limits on %d nodes: %s vs %s without limits = ×%.2f (the stagger alone needs ≥ (%d−1) × %s = %s)\n",
			lim.nodes, fmtDur(lim.wall), fmtDur(free.wall), lim.wall.Seconds()/free.wall.Seconds(),
			lim.nodes, b.cfg.stagger, fmtDur(time.Duration(max(lim.nodes-1, 0))*b.cfg.stagger))
	}
	if p, _ := memoryKB(); p > 0 {
		fmt.Fprintf(w, "peak RSS of the whole benchmark process (VmHWM): %s\n", fmtKB(p))
	}
	if b.stateDir != "" {
		fmt.Fprintf(w, "Temporal database: %s\n", dbSize(b.stateDir))
	}
	for _, r := range runs {
		for _, n := range r.notes {
			fmt.Fprintf(w, "note (%s): %s\n", r.label, n)
		}
		if len(r.logs) > 0 {
			fmt.Fprintf(w, "logged during %s:", r.label)
			for i, l := range r.logs {
				if i == 6 {
					fmt.Fprintf(w, " …")
					break
				}
				fmt.Fprintf(w, " %d× %q;", l.n, l.msg)
			}
			fmt.Fprintln(w)
		}
		for i, f := range r.failures {
			if i == 10 {
				fmt.Fprintf(w, "  … %d more failures\n", len(r.failures)-10)
				break
			}
			fmt.Fprintf(w, "FAILED (%s) %s\n", r.label, f)
		}
	}
}

func findRun(runs []*runStats, kind, label string) *runStats {
	for _, r := range runs {
		if r.kind == kind && (label == "" || r.label == label) {
			return r
		}
	}
	return nil
}

// compactLimits turns "clones 8, power-ons 8, stagger 0s, in-flight 64"
// into "8/8/0s/64".
func compactLimits(s string) string {
	if s == "none" {
		return s
	}
	var vals []string
	for _, part := range strings.Split(s, ", ") {
		if _, v, ok := strings.Cut(part, " "); ok {
			vals = append(vals, v)
		}
	}
	return strings.Join(vals, "/")
}

func abbrev(typ string) string {
	switch typ {
	case "RackRollout":
		return "Rack"
	case "RackLimiter":
		return "Limiter"
	case "Provision":
		return "Prov"
	}
	return typ
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "−" + fmtDur(-d)
	case d == 0:
		return "0"
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	m := int(d / time.Minute)
	return fmt.Sprintf("%dm%04.1fs", m, (d - time.Duration(m)*time.Minute).Seconds())
}

func fmtKB(kb int64) string {
	if kb <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
}

// dbSize describes the Temporal SQLite files of the state dir.
func dbSize(stateDir string) string {
	var parts []string
	for _, name := range []string{"temporal.db", "temporal.db-wal"} {
		if fi, err := os.Stat(filepath.Join(stateDir, "temporal", name)); err == nil {
			parts = append(parts, fmt.Sprintf("%s %.1f MiB", name, float64(fi.Size())/(1<<20)))
		}
	}
	if len(parts) == 0 {
		return "not found"
	}
	return strings.Join(parts, ", ")
}
