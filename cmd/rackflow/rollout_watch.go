package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

// watchAndReport follows rollout id (live bars on a terminal, plain lines
// otherwise, nothing with --json), then prints its report.
func watchAndReport(c *cli.Context, src progressSource, id string, every time.Duration) error {
	var d progressDisplay = nopDisplay{}
	if !c.Bool("json") {
		if isTerminal(c.App.Writer) {
			d = newBarDisplay(c.Context, c.App.Writer)
		} else {
			d = newLineDisplay(c.App.Writer)
		}
	}
	res, err := followRollout(c.Context, src, id, d, every)
	if err != nil {
		return err
	}
	return report(c, res)
}

// report prints a finished rollout's report (text or --json) and returns
// exit status 1 unless it completed.
func report(c *cli.Context, r workflows.RolloutResult) error {
	var err error
	if c.Bool("json") {
		err = writeJSON(c.App.Writer, r)
	} else {
		err = printReport(c.App.Writer, r)
	}
	if err != nil {
		return err
	}
	if r.State != workflows.RolloutCompleted {
		return cli.Exit(fmt.Sprintf("rollout %s %s: %d failed, %d skipped", r.ID, r.State, len(r.Failures), len(r.Skipped)), 1)
	}
	return nil
}

// isTerminal reports whether w is a terminal mpb can draw on: one with a
// size (a pseudo-terminal of size 0×0 would show nothing).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	width, height, err := term.GetSize(int(f.Fd()))
	return err == nil && width > 0 && height > 0
}

// clock formats a time for tables: local, to the second; "-" when zero.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

// oneLine flattens an error message for a table cell.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// printReport writes a finished rollout's report: state, counts, times,
// skipped nodes, then a table of every failed node with rack, step, error.
func printReport(w io.Writer, r workflows.RolloutResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "rollout\t%s\n", r.ID)
	fmt.Fprintf(tw, "state\t%s\n", r.State)
	fmt.Fprintf(tw, "image\t%s@%s\n", r.Image, r.Version)
	fmt.Fprintf(tw, "nodes\t%d: %d provisioned, %d failed, %d skipped\n", r.Total, len(r.Provisioned), len(r.Failures), len(r.Skipped))
	fmt.Fprintf(tw, "started\t%s\n", clock(r.Started))
	if !r.Ended.IsZero() && !r.Started.IsZero() {
		fmt.Fprintf(tw, "ended\t%s (%s)\n", clock(r.Ended), r.Ended.Sub(r.Started).Round(time.Second))
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(tw, "skipped\t%s\n", strings.Join(r.Skipped, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printFailures(w, r.Failures)
}

// printSnapshot writes a running rollout's progress: state, counts, ETA, a
// table per rack, then every node failed so far.
func printSnapshot(w io.Writer, p workflows.RolloutProgress) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "rollout\t%s\n", p.ID)
	fmt.Fprintf(tw, "state\t%s\n", p.State)
	fmt.Fprintf(tw, "image\t%s@%s\n", p.Image, p.Version)
	fmt.Fprintf(tw, "nodes\t%d: %d provisioned, %d failed, %d running\n", p.Total, p.Provisioned, p.Failed, p.Running)
	fmt.Fprintf(tw, "started\t%s\n", clock(p.Started))
	if !p.ETA.IsZero() {
		fmt.Fprintf(tw, "eta\t%s\n", clock(p.ETA))
	}
	fmt.Fprintln(tw, "\nRACK\tTOTAL\tPENDING\tRUNNING\tPROVISIONED\tFAILED\tSTATE")
	var failures []workflows.NodeFailure
	for _, r := range p.Racks {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", r.Rack, r.Total, r.Pending, r.Running, r.Provisioned, r.Failed, rackState(r))
		failures = append(failures, r.Failures...)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printFailures(w, failures)
}

func printFailures(w io.Writer, fs []workflows.NodeFailure) error {
	if len(fs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nNODE\tRACK\tSTEP\tERROR")
	for _, f := range fs {
		node := f.Node
		if node == "" {
			node = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", node, f.Rack, f.Step, oneLine(f.Error))
	}
	return tw.Flush()
}

// rackState names what a rack is doing beyond its counts.
func rackState(r workflows.RackProgress) string {
	switch {
	case r.Cancelled:
		return "cancelled"
	case r.Stopped:
		return "stopped"
	case r.Paused:
		return "paused"
	case r.Provisioned+r.Failed >= r.Total && r.Running == 0:
		return "done"
	}
	return "running"
}

// progressSource is what watch reads (*starter.Client).
type progressSource interface {
	RolloutProgress(ctx context.Context, id string) (workflows.RolloutProgress, error)
	WaitRollout(ctx context.Context, id string) (workflows.RolloutResult, error)
}

// progressDisplay shows a rollout's progress as it changes. Its methods
// are called from one goroutine.
type progressDisplay interface {
	update(p workflows.RolloutProgress) // after each answered query
	problem(err error)                  // a query failed; the watch goes on
	close()                             // the watch is over: flush
}

// followRollout polls src for rollout id's progress every interval and
// shows it on d until the rollout ends; it returns the rollout's report.
// The end is learnt from a concurrent WaitRollout, so a rollout that has
// already ended (or that no worker can be queried for) still returns.
func followRollout(ctx context.Context, src progressSource, id string, d progressDisplay, every time.Duration) (workflows.RolloutResult, error) {
	defer d.close()
	type outcome struct {
		res workflows.RolloutResult
		err error
	}
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan outcome, 1)
	go func() {
		res, err := src.WaitRollout(waitCtx, id)
		done <- outcome{res, err}
	}()
	poll := func(final bool) {
		qctx, qcancel := context.WithTimeout(ctx, queryTimeout)
		defer qcancel()
		p, err := src.RolloutProgress(qctx, id)
		switch {
		case err == nil:
			d.update(p)
		case !final && !errors.Is(err, starter.ErrNoRollout) && ctx.Err() == nil:
			d.problem(err) // an unknown ID is WaitRollout's to report
		}
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	poll(false)
	for {
		select {
		case o := <-done:
			if o.err == nil {
				poll(true) // end on the final counts
			}
			return o.res, o.err
		case <-tick.C:
			poll(false)
		case <-ctx.Done():
			return workflows.RolloutResult{}, ctx.Err()
		}
	}
}

type nopDisplay struct{}

func (nopDisplay) update(workflows.RolloutProgress) {}
func (nopDisplay) problem(error)                    {}
func (nopDisplay) close()                           {}

// changes remembers what a display has shown, to show only what changed.
type changes struct {
	state   workflows.RolloutState
	failed  map[string]bool // rack + "/" + node of the failures shown
	lastErr string
}

// newFailures returns the failures of p not shown yet, marking them shown.
func (ch *changes) newFailures(p workflows.RolloutProgress) []workflows.NodeFailure {
	if ch.failed == nil {
		ch.failed = map[string]bool{}
	}
	var out []workflows.NodeFailure
	for _, r := range p.Racks {
		for _, f := range r.Failures {
			if key := f.Rack + "/" + f.Node; !ch.failed[key] {
				ch.failed[key] = true
				out = append(out, f)
			}
		}
	}
	return out
}

func failureLine(f workflows.NodeFailure) string {
	return fmt.Sprintf("%s (rack %s) failed at %s: %s", f.Node, f.Rack, f.Step, oneLine(f.Error))
}

// lineDisplay prints plain lines, for output that is not a terminal: the
// rollout's state when it changes, a rack's counts when they change, and
// each failure once.
type lineDisplay struct {
	w     io.Writer
	ch    changes
	lines map[string]string // rack → last line printed
}

func newLineDisplay(w io.Writer) *lineDisplay {
	return &lineDisplay{w: w, lines: map[string]string{}}
}

func (d *lineDisplay) update(p workflows.RolloutProgress) {
	d.ch.lastErr = ""
	if p.State != d.ch.state {
		d.ch.state = p.State
		fmt.Fprintf(d.w, "rollout %s %s: %d/%d done (%d provisioned, %d failed, %d running)\n",
			p.ID, p.State, p.Provisioned+p.Failed, p.Total, p.Provisioned, p.Failed, p.Running)
	}
	for _, r := range p.Racks {
		line := fmt.Sprintf("%s: %d/%d done (%d provisioned, %d failed, %d running, %d pending) %s",
			r.Rack, r.Provisioned+r.Failed, r.Total, r.Provisioned, r.Failed, r.Running, r.Pending, rackState(r))
		if d.lines[r.Rack] != line {
			d.lines[r.Rack] = line
			fmt.Fprintln(d.w, line)
		}
	}
	for _, f := range d.ch.newFailures(p) {
		fmt.Fprintln(d.w, failureLine(f))
	}
}

func (d *lineDisplay) problem(err error) {
	if msg := err.Error(); msg != d.ch.lastErr {
		d.ch.lastErr = msg
		fmt.Fprintf(d.w, "progress: %v (retrying)\n", err)
	}
}

func (d *lineDisplay) close() {}

// barDisplay draws one mpb bar per rack (total = the rack's nodes, progress
// = provisioned + failed) under a bar for the whole rollout; failures and
// state changes print above the bars.
type barDisplay struct {
	p  *mpb.Progress
	ch changes

	mu    sync.Mutex // guards the fields the decorators read
	all   workflows.RolloutProgress
	racks map[string]workflows.RackProgress

	allBar *mpb.Bar
	bars   map[string]*mpb.Bar
	order  []string
}

func newBarDisplay(ctx context.Context, w io.Writer, opts ...mpb.ContainerOption) *barDisplay {
	return &barDisplay{
		p:     mpb.NewWithContext(ctx, append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(60)}, opts...)...),
		racks: map[string]workflows.RackProgress{},
		bars:  map[string]*mpb.Bar{},
	}
}

func (d *barDisplay) update(p workflows.RolloutProgress) {
	d.ch.lastErr = ""
	d.mu.Lock()
	d.all = p
	for _, r := range p.Racks {
		d.racks[r.Rack] = r
	}
	d.mu.Unlock()
	// Bars are driven outside d.mu: mpb calls the decorators, which take it.
	if d.allBar == nil {
		d.allBar = d.p.AddBar(0, d.allDecorators()...)
	}
	d.allBar.SetTotal(int64(p.Total), false)
	d.allBar.SetCurrent(int64(p.Provisioned + p.Failed))
	for _, r := range p.Racks {
		b, ok := d.bars[r.Rack]
		if !ok {
			b = d.p.AddBar(0, d.rackDecorators(r.Rack, p.Started)...)
			d.bars[r.Rack] = b
			d.order = append(d.order, r.Rack)
		}
		b.SetTotal(int64(r.Total), false)
		b.SetCurrent(int64(r.Provisioned + r.Failed))
	}
	if p.State != d.ch.state {
		d.ch.state = p.State
		fmt.Fprintf(d.p, "rollout %s %s\n", p.ID, p.State)
	}
	for _, f := range d.ch.newFailures(p) {
		fmt.Fprintln(d.p, failureLine(f))
	}
}

func (d *barDisplay) allDecorators() []mpb.BarOption {
	return []mpb.BarOption{
		mpb.PrependDecorators(
			decor.Name("all", decor.WCSyncSpaceR),
			decor.CountersNoUnit("%d/%d", decor.WCSyncWidth),
		),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string {
				d.mu.Lock()
				defer d.mu.Unlock()
				return fmt.Sprintf("%d ok, %d failed, %d running", d.all.Provisioned, d.all.Failed, d.all.Running)
			}, decor.WCSyncSpaceR),
			decor.Any(func(decor.Statistics) string {
				d.mu.Lock()
				defer d.mu.Unlock()
				switch {
				case d.all.State != workflows.RolloutRunning:
					return string(d.all.State)
				case d.all.ETA.IsZero():
					return "ETA -"
				}
				return "ETA " + max(time.Until(d.all.ETA), 0).Round(time.Second).String()
			}, decor.WCSyncSpaceR),
		),
	}
}

func (d *barDisplay) rackDecorators(rack string, started time.Time) []mpb.BarOption {
	if started.IsZero() {
		started = time.Now()
	}
	return []mpb.BarOption{
		mpb.PrependDecorators(
			decor.Name(rack, decor.WCSyncSpaceR),
			decor.CountersNoUnit("%d/%d", decor.WCSyncWidth),
		),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string {
				d.mu.Lock()
				defer d.mu.Unlock()
				r := d.racks[rack]
				return fmt.Sprintf("%d ok, %d failed, %d running", r.Provisioned, r.Failed, r.Running)
			}, decor.WCSyncSpaceR),
			decor.OnAbort(decor.OnComplete(decor.Any(func(s decor.Statistics) string {
				d.mu.Lock()
				r := d.racks[rack]
				d.mu.Unlock()
				if st := rackState(r); st != "running" {
					return st
				}
				if s.Current == 0 {
					return "ETA -"
				}
				per := time.Since(started) / time.Duration(s.Current)
				return "ETA " + (per * time.Duration(s.Total-s.Current)).Round(time.Second).String()
			}, decor.WCSyncSpaceR), "done"), "stopped"),
		),
	}
}

func (d *barDisplay) problem(err error) {
	if msg := err.Error(); msg != d.ch.lastErr {
		d.ch.lastErr = msg
		fmt.Fprintf(d.p, "progress: %v (retrying)\n", err)
	}
}

// close completes the bars whose nodes all finished and stops the others
// (skipped nodes), then waits for mpb's last render.
func (d *barDisplay) close() {
	finish := func(b *mpb.Bar, cur, total int) {
		if cur >= total {
			b.SetTotal(int64(total), true)
		} else {
			b.Abort(false)
		}
	}
	d.mu.Lock()
	all, racks := d.all, d.racks
	d.mu.Unlock()
	if d.allBar != nil {
		finish(d.allBar, all.Provisioned+all.Failed, all.Total)
	}
	for _, rack := range d.order {
		r := racks[rack]
		finish(d.bars[rack], r.Provisioned+r.Failed, r.Total)
	}
	d.p.Wait()
}
