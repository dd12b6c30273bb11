package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// bounds are the Kumar & Ross lower bounds ("Peer-Assisted File
// Distribution: The Minimum Distribution Time", 2006) on the time to get a
// file of f bytes to n clients, given the server's upload us, the slowest
// client's download dmin and the clients' total upload sumU, in bytes/s:
// client-server max(n·f/us, f/dmin) and peer-to-peer max(f/us, f/dmin,
// n·f/(us + sumU)).
func bounds(f, us, dmin, sumU float64, n int) (clientServer, p2p time.Duration) {
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	nf := float64(n) * f
	return sec(max(nf/us, f/dmin)), sec(max(f/us, f/dmin, nf/(us+sumU)))
}

// linkBounds returns the bounds of the testbed: every link rateBit bit/s.
func linkBounds(size, rateBit int64, n int) (clientServer, p2p time.Duration) {
	r := float64(rateBit) / 8
	return bounds(float64(size), r, r, float64(n)*r, n)
}

// Goals at the largest N (issue #5).
const (
	goalEgress     = 1.5 // × image size, server egress of the swarm
	goalThroughput = 0.7 // × the swarm's N = 1 median
	goalLast       = 1.3 // × the P2P lower bound
)

// report prints the table of every result and the goals.
func report(w io.Writer, cfg config, results []result) {
	mib := func(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
	fmt.Fprintf(w, "\nF = %d MiB, u_s = d_min = u_i = %g Mbit/s; MB/s = 10^6 B/s of image data per client; egress = image server link tx bytes (headers included)\n",
		cfg.size>>20, float64(cfg.rateBit)/1e6)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\tN\tmedian MB/s\tmin MB/s\tlast s\tegress MiB\t× F\tfrom peers MiB\tCS bound s\tlast/CS\tP2P bound s\tlast/P2P\tclient CPU s\tserver CPU s\thost busy %\t")
	for _, r := range results {
		cs, p2p := linkBounds(cfg.size, cfg.rateBit, r.n)
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.1f\t%s\t%.2f\t%s\t%.1f\t%.2f\t%.1f\t%.2f\t%.1f\t%.1f\t%.0f\t\n",
			r.method, r.n, r.median(), r.perClient[0], r.last.Seconds(), mib(r.egress),
			float64(r.egress)/float64(cfg.size), mib(r.fromPeers), cs.Seconds(), r.last.Seconds()/cs.Seconds(),
			p2p.Seconds(), r.last.Seconds()/p2p.Seconds(), r.clientCPU.Seconds(), r.serverCPU.Seconds(), r.hostBusyPct)
	}
	tw.Flush()

	var one, top *result
	for i := range results {
		r := &results[i]
		if r.method != methodSwarm {
			continue
		}
		if r.n == 1 {
			one = r
		}
		if top == nil || r.n > top.n {
			top = r
		}
	}
	if top == nil {
		return
	}
	_, p2p := linkBounds(cfg.size, cfg.rateBit, top.n)
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "\ngoals for the swarm at N=%d:\n", top.n)
	e := float64(top.egress) / float64(cfg.size)
	fmt.Fprintf(w, "  server egress ≤ %.1f × F:            %.2f × F  %s\n", goalEgress, e, met(e <= goalEgress))
	if one != nil {
		q := top.median() / one.median()
		fmt.Fprintf(w, "  median ≥ %.1f × N=1 median (%.2f MB/s): %.2f MB/s = %.2f ×  %s\n", goalThroughput, one.median(), top.median(), q, met(q >= goalThroughput))
	} else {
		fmt.Fprintf(w, "  median ≥ %.1f × N=1 median: n/a (N=1 not measured)\n", goalThroughput)
	}
	q := top.last.Seconds() / p2p.Seconds()
	fmt.Fprintf(w, "  last finisher ≤ %.1f × P2P bound (%.1f s): %.1f s = %.2f ×  %s\n", goalLast, p2p.Seconds(), top.last.Seconds(), q, met(q <= goalLast))
}

// writePlot writes the median per-client MB/s against N of each method as
// a PNG to cfg.plot (creating its directory).
func writePlot(cfg config, results []result) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Per-client throughput, %d MiB image, %g Mbit/s links", cfg.size>>20, float64(cfg.rateBit)/1e6)
	p.X.Label.Text = "clients N"
	p.Y.Label.Text = "per-client MB/s (median)"
	if len(cfg.counts) > 1 {
		p.X.Scale = plot.LogScale{}
	}
	var ticks []plot.Tick
	for _, n := range cfg.counts {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: strconv.Itoa(n)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min = 0
	p.Legend.Top = true
	series := map[string]plotter.XYs{}
	for _, r := range results {
		series[r.method] = append(series[r.method], plotter.XY{X: float64(r.n), Y: r.median()})
	}
	link := plotter.XYs{{X: float64(cfg.counts[0]), Y: float64(cfg.rateBit) / 8 / 1e6}, {X: float64(cfg.counts[len(cfg.counts)-1]), Y: float64(cfg.rateBit) / 8 / 1e6}}
	var lines []any
	for _, m := range []struct{ method, label string }{{methodSwarm, "rackflow swarm"}, {methodHTTP, "plain HTTP"}} {
		if xys := series[m.method]; len(xys) > 0 {
			lines = append(lines, m.label, xys)
		}
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	l, err := plotter.NewLine(link)
	if err != nil {
		return err
	}
	l.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	p.Add(l)
	p.Legend.Add("link rate", l)
	if dir := filepath.Dir(cfg.plot); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return p.Save(6*vg.Inch, 4*vg.Inch, cfg.plot)
}
