package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kinds of run.
const (
	kindRollout = "rollout"
	kindPlain   = "plain"
)

// runStats is every figure of one measured run.
type runStats struct {
	label, kind string
	id          string // rollout ID (rollouts)
	racks       int
	nodes       int
	limits      string // the racks' limits, described
	window      int    // nodes in flight per rack
	ok, failed  int
	failures    []string // "node (step): error"

	wall, cpu        time.Duration
	rssPeakKB, rssKB int64   // VmHWM and VmRSS at the end of the run
	machineBusy      float64 // share of all cores busy (every process) during the run
	dbConns          int     // open handles on temporal.db at the end of the run

	perNode     []time.Duration // completed nodes: Provision close − start (visibility), or the loop's per-node time
	parts       breakdown       // mean per completed node
	extraBoots  int             // boots beyond the first, over all nodes
	checkInHTTP map[int]int     // plain loop: HTTP status of the nodes' check-ins → count

	largest    histRun            // the longest history of any run the rollout caused
	maxByType  map[string]histRun // per workflow type
	runsByType map[string]int     // runs per workflow type
	canByType  map[string]int     // of which continued as new
	logs       []logCount         // warnings and errors logged during the run
	queueMax   queueSample        // largest workflow-task backlog of the global queue seen (rollouts, every 10 s)
	notes      []string
}

// breakdown splits one node's provisioning time. For a Provision it comes
// from its history; for the plain loop from the loop's own clocks (queue and
// wfTask are then zero).
type breakdown struct {
	total     time.Duration // first → last event (loop: whole node)
	exec      time.Duration // activities running (started → completed)
	queue     time.Duration // activities scheduled → started
	limitWait time.Duration // rack permits (RequestPermit done → grant signal) or in-process slots: the sum of
	waitIn    time.Duration //   in-flight permit
	waitClone time.Duration //   clone permit / slot
	waitPower time.Duration //   power-on permit / slot and stagger
	boot      time.Duration // PowerCycle done → check-in received
	wfTask    time.Duration // workflow tasks scheduled → started (part of rest)
	rest      time.Duration // total − exec − queue − limitWait − boot
	boots     int           // PowerCycle calls
	wfTasks   int           // workflow tasks started
	wfTaskMax time.Duration // longest workflow-task schedule-to-start
	firstWFT  time.Duration // schedule-to-start of the first workflow task (normal queue; later ones are sticky)
	events    int           // history events
}

// histRun is one workflow run and its history length.
type histRun struct {
	typ, id, run string
	events       int
}

func (h histRun) String() string {
	if h.events == 0 {
		return "—"
	}
	return fmt.Sprintf("%d (%s %s)", h.events, h.typ, h.id)
}

func meanBreakdown(ps []breakdown) breakdown {
	var m breakdown
	if len(ps) == 0 {
		return m
	}
	for _, p := range ps {
		m.total += p.total
		m.exec += p.exec
		m.queue += p.queue
		m.limitWait += p.limitWait
		m.waitIn += p.waitIn
		m.waitClone += p.waitClone
		m.waitPower += p.waitPower
		m.wfTasks += p.wfTasks
		m.firstWFT += p.firstWFT
		m.wfTaskMax = max(m.wfTaskMax, p.wfTaskMax)
		m.boot += p.boot
		m.wfTask += p.wfTask
		m.rest += p.rest
	}
	n := time.Duration(len(ps))
	m.total, m.exec, m.queue, m.limitWait, m.boot, m.wfTask, m.rest =
		m.total/n, m.exec/n, m.queue/n, m.limitWait/n, m.boot/n, m.wfTask/n, m.rest/n
	m.waitIn, m.waitClone, m.waitPower, m.firstWFT = m.waitIn/n, m.waitClone/n, m.waitPower/n, m.firstWFT/n
	// wfTasks stays the total and wfTaskMax the maximum over all nodes.
	return m
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// percentile is the q-quantile (0…1) of ds by the nearest-rank method.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memoryKB reads the peak (VmHWM) and current (VmRSS) resident set size of
// this process from /proc/self/status, in kB; 0 when unreadable.
func memoryKB() (peak, current int64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmHWM":
			peak = n
		case "VmRSS":
			current = n
		}
	}
	return peak, current
}

// logCounter forwards records to next and counts every warning and error
// by level and message, so the report can say what the stack complained
// about during each run.
type logCounter struct {
	next   slog.Handler
	counts *logCounts
}

type logCounts struct {
	mu sync.Mutex
	m  map[string]int // "WARN message" → count
}

// logCount is one message and how often it was logged.
type logCount struct {
	msg string
	n   int
}

func newLogCounter(next slog.Handler) *logCounter {
	return &logCounter{next: next, counts: &logCounts{m: map[string]int{}}}
}

func (h *logCounter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *logCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.counts.mu.Lock()
		h.counts.m[r.Level.String()+" "+r.Message]++
		h.counts.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *logCounter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logCounter{next: h.next.WithAttrs(attrs), counts: h.counts}
}

func (h *logCounter) WithGroup(name string) slog.Handler {
	return &logCounter{next: h.next.WithGroup(name), counts: h.counts}
}

// snapshot copies the counts so far.
func (h *logCounter) snapshot() map[string]int {
	h.counts.mu.Lock()
	defer h.counts.mu.Unlock()
	return maps.Clone(h.counts.m)
}

// since returns the messages logged after snapshot before, most frequent
// first.
func (h *logCounter) since(before map[string]int) []logCount {
	var out []logCount
	for msg, n := range h.snapshot() {
		if d := n - before[msg]; d > 0 {
			out = append(out, logCount{msg: msg, n: d})
		}
	}
	slices.SortFunc(out, func(a, b logCount) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return strings.Compare(a.msg, b.msg)
	})
	return out
}
