package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"

	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

// TestRolloutBadUsageExits2 runs every rollout subcommand with bad flags and
// arguments: each prints usage and exits 2 before dialling Temporal.
func TestRolloutBadUsageExits2(t *testing.T) {
	start := []string{"rackflow", "rollout", "start"}
	img := []string{"--image", "demo", "--version", "v1"}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	tests := []struct {
		name string
		args []string
	}{
		{"rollout unknown", []string{"rackflow", "rollout", "bogus"}},
		{"start no nodes", cat(start, img)},
		{"start no image", cat(start, []string{"--rack", "r01", "--version", "v1"})},
		{"start no version", cat(start, []string{"--rack", "r01", "--image", "demo"})},
		{"start bad rack", cat(start, img, []string{"--rack", "R01"})},
		{"start empty rack", cat(start, img, []string{"--rack", "r01,"})},
		{"start bad node", cat(start, img, []string{"Bad;Name"})},
		{"start bad image", cat(start, []string{"--image", "Demo", "--version", "v1", "r01n01"})},
		{"start bad budget", cat(start, img, []string{"--max-failures", "5x", "r01n01"})},
		{"start budget over 100%", cat(start, img, []string{"--max-failures", "150%", "r01n01"})},
		{"start bad rack budget", cat(start, img, []string{"--rack-max-failures", "-1", "r01n01"})},
		{"start negative window", cat(start, img, []string{"--window", "-1", "r01n01"})},
		{"start zero timeout", cat(start, img, []string{"--check-in-timeout", "0s", "r01n01"})},
		{"start bad id", cat(start, img, []string{"--id", "Bad/ID", "r01n01"})},
		{"start unknown flag", cat(start, []string{"--bogus"})},
		{"start trailing unknown flag", cat(start, img, []string{"r01n01", "--bogus"})},
		{"start trailing flag without value", cat(start, []string{"r01n01", "--image"})},
		{"start trailing bad value", cat(start, img, []string{"r01n01", "--window", "x"})},
		{"start trailing flags applied", cat(start, []string{"r01n01", "--image", "demo", "--version", "v1", "--window=-2"})},
		{"watch no id", []string{"rackflow", "rollout", "watch"}},
		{"watch two ids", []string{"rackflow", "rollout", "watch", "a", "b"}},
		{"watch bad id", []string{"rackflow", "rollout", "watch", "../x"}},
		{"pause no id", []string{"rackflow", "rollout", "pause"}},
		{"pause bad id", []string{"rackflow", "rollout", "pause", "Bad;ID"}},
		{"resume two ids", []string{"rackflow", "rollout", "resume", "a", "b"}},
		{"cancel no id", []string{"rackflow", "rollout", "cancel", "--undo"}},
		{"cancel bad id", []string{"rackflow", "rollout", "cancel", "x y", "--undo"}},
		{"cancel trailing unknown flag", []string{"rackflow", "rollout", "cancel", "x", "--force"}},
		{"cancel bad bool", []string{"rackflow", "rollout", "cancel", "x", "--undo=maybe"}},
		{"add-nodes no id", []string{"rackflow", "rollout", "add-nodes"}},
		{"add-nodes no nodes", []string{"rackflow", "rollout", "add-nodes", "x"}},
		{"add-nodes bad rack", []string{"rackflow", "rollout", "add-nodes", "x", "--rack", "r 1"}},
		{"add-nodes bad node", []string{"rackflow", "rollout", "add-nodes", "x", "Bad;Node"}},
		{"list argument", []string{"rackflow", "rollout", "list", "x"}},
		{"show no id", []string{"rackflow", "rollout", "show"}},
		{"show two ids", []string{"rackflow", "rollout", "show", "a", "b"}},
		{"show unknown flag", []string{"rackflow", "rollout", "show", "--undo", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectUsageError(t, tt.args) })
	}
}

// TestPositionalAppliesTrailingFlags checks that flags after the arguments
// are applied ("cancel ID --undo") and "--" ends the flags.
func TestPositionalAppliesTrailingFlags(t *testing.T) {
	tests := []struct {
		args     []string
		wantArgs []string
		undo     bool
		racks    []string
	}{
		{[]string{"id1"}, []string{"id1"}, false, nil},
		{[]string{"id1", "--undo"}, []string{"id1"}, true, nil},
		{[]string{"--undo", "id1"}, []string{"id1"}, true, nil},
		{[]string{"id1", "--undo=false"}, []string{"id1"}, false, nil},
		{[]string{"id1", "n1", "--rack", "r01,r02", "n2", "-rack=r03"}, []string{"id1", "n1", "n2"}, false, []string{"r01", "r02", "r03"}},
		{[]string{"id1", "--", "--undo"}, []string{"id1", "--undo"}, false, nil},
		{[]string{"id1", "--json"}, []string{"id1"}, false, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var got []string
			a := &cli.App{
				Name: "t", Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{},
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json"}},
				Commands: []*cli.Command{{
					Name:  "x",
					Flags: []cli.Flag{&cli.BoolFlag{Name: "undo"}, &cli.StringSliceFlag{Name: "rack"}},
					Action: func(c *cli.Context) error {
						var err error
						got, err = positional(c)
						if err != nil {
							return err
						}
						if c.Bool("undo") != tt.undo {
							t.Errorf("undo = %v, want %v", c.Bool("undo"), tt.undo)
						}
						if wantJSON := slices.Contains(tt.args, "--json"); c.Bool("json") != wantJSON {
							t.Errorf("json = %v, want %v", c.Bool("json"), wantJSON)
						}
						if r := c.StringSlice("rack"); !slices.Equal(r, tt.racks) {
							t.Errorf("racks = %q, want %q", r, tt.racks)
						}
						return nil
					},
				}},
			}
			if err := a.Run(append([]string{"t", "x"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.wantArgs) {
				t.Errorf("args = %q, want %q", got, tt.wantArgs)
			}
		})
	}
}

// fakeSource serves scripted progress answers, one per query (the last one
// repeats); WaitRollout returns once every answer has been served.
type fakeSource struct {
	mu      sync.Mutex
	answers []answer
	served  int
	done    chan struct{}
	res     workflows.RolloutResult
	err     error
}

type answer struct {
	p   workflows.RolloutProgress
	err error
}

func newFakeSource(res workflows.RolloutResult, err error, answers ...answer) *fakeSource {
	return &fakeSource{answers: answers, done: make(chan struct{}), res: res, err: err}
}

func (f *fakeSource) RolloutProgress(ctx context.Context, id string) (workflows.RolloutProgress, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.answers[min(f.served, len(f.answers)-1)]
	if f.served < len(f.answers) {
		f.served++
		if f.served == len(f.answers) {
			close(f.done)
		}
	}
	return a.p, a.err
}

func (f *fakeSource) WaitRollout(ctx context.Context, id string) (workflows.RolloutResult, error) {
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return workflows.RolloutResult{}, ctx.Err()
	}
}

// progressAt builds a rollout's progress from its racks' counts.
func progressAt(state workflows.RolloutState, racks ...workflows.RackProgress) workflows.RolloutProgress {
	p := workflows.RolloutProgress{ID: "r1", Image: "demo", Version: "v1", State: state, Racks: racks,
		Started: time.Date(2026, 11, 20, 23, 15, 0, 0, time.UTC)}
	for _, r := range racks {
		p.Total += r.Total
		p.Provisioned += r.Provisioned
		p.Failed += r.Failed
		p.Running += r.Running
	}
	return p
}

var fail3 = workflows.NodeFailure{Node: "r01n03", Rack: "r01", Step: "awaiting-check-in", Error: "no check-in\nwithin 10m0s"}

// script is a rollout of two racks: r01 (4 nodes, one fails) and r02
// (2 nodes, added later), with a transient query error and a pause.
func script() []answer {
	return []answer{
		{err: errors.New("workflow not ready")},
		{err: errors.New("workflow not ready")},
		{p: progressAt(workflows.RolloutRunning, workflows.RackProgress{Rack: "r01", Total: 4, Pending: 2, Running: 2})},
		{p: progressAt(workflows.RolloutRunning, workflows.RackProgress{Rack: "r01", Total: 4, Pending: 2, Running: 2})},
		{p: progressAt(workflows.RolloutRunning, workflows.RackProgress{Rack: "r01", Total: 4, Pending: 0, Running: 2, Provisioned: 1, Failed: 1, Failures: []workflows.NodeFailure{fail3}})},
		{p: progressAt(workflows.RolloutPaused,
			workflows.RackProgress{Rack: "r01", Total: 4, Running: 1, Provisioned: 2, Failed: 1, Paused: true, Failures: []workflows.NodeFailure{fail3}},
			workflows.RackProgress{Rack: "r02", Total: 2, Pending: 2, Paused: true})},
		{p: progressAt(workflows.RolloutCompleted,
			workflows.RackProgress{Rack: "r01", Total: 4, Provisioned: 3, Failed: 1, Failures: []workflows.NodeFailure{fail3}},
			workflows.RackProgress{Rack: "r02", Total: 2, Provisioned: 2})},
	}
}

// TestFollowRolloutPlainLines follows a scripted rollout with the plain
// display: state changes, each rack's changed counts, each failure once,
// one line per distinct query error.
func TestFollowRolloutPlainLines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	want := workflows.RolloutResult{ID: "r1", State: workflows.RolloutCompleted, Total: 6}
	src := newFakeSource(want, nil, script()...)
	var out bytes.Buffer
	got, err := followRollout(ctx, src, "r1", newLineDisplay(&out), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != want.ID || got.State != want.State {
		t.Errorf("result = %+v, want %+v", got, want)
	}
	wantOut := `progress: workflow not ready (retrying)
rollout r1 running: 0/4 done (0 provisioned, 0 failed, 2 running)
r01: 0/4 done (0 provisioned, 0 failed, 2 running, 2 pending) running
r01: 2/4 done (1 provisioned, 1 failed, 2 running, 0 pending) running
r01n03 (rack r01) failed at awaiting-check-in: no check-in within 10m0s
rollout r1 paused: 3/6 done (2 provisioned, 1 failed, 1 running)
r01: 3/4 done (2 provisioned, 1 failed, 1 running, 0 pending) paused
r02: 0/2 done (0 provisioned, 0 failed, 0 running, 2 pending) paused
rollout r1 completed: 6/6 done (5 provisioned, 1 failed, 0 running)
r01: 4/4 done (3 provisioned, 1 failed, 0 running, 0 pending) done
r02: 2/2 done (2 provisioned, 0 failed, 0 running, 0 pending) done
`
	if out.String() != wantOut {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), wantOut)
	}
}

// TestFollowRolloutUnknown: an unknown ID ends the watch with ErrNoRollout
// and no "retrying" noise.
func TestFollowRolloutUnknown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	noRollout := fmt.Errorf("rollout nope: %w", starter.ErrNoRollout)
	src := newFakeSource(workflows.RolloutResult{}, noRollout, answer{err: noRollout})
	var out bytes.Buffer
	_, err := followRollout(ctx, src, "nope", newLineDisplay(&out), time.Millisecond)
	if !errors.Is(err, starter.ErrNoRollout) {
		t.Fatalf("err = %v, want ErrNoRollout", err)
	}
	if out.Len() != 0 {
		t.Errorf("output: %q, want none", out.String())
	}
}

// TestFollowRolloutBars drives the mpb display through the same script and
// checks its last frame shows every rack and the failure.
func TestFollowRolloutBars(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	src := newFakeSource(workflows.RolloutResult{ID: "r1", State: workflows.RolloutCompleted}, nil, script()...)
	var out bytes.Buffer
	if _, err := followRollout(ctx, src, "r1", newBarDisplay(ctx, &out, mpb.WithAutoRefresh()), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"all", "r01", "r02", "4/4", "2/2", "3 ok, 1 failed, 0 running", "r01n03 (rack r01) failed at awaiting-check-in", "rollout r1 paused"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}

// TestWatchReportExitStatus: the report follows the watch; exit status 0
// for a completed rollout, 1 for a failed or cancelled one.
func TestWatchReportExitStatus(t *testing.T) {
	started := time.Date(2026, 11, 20, 23, 15, 0, 0, time.UTC)
	tests := []struct {
		state    workflows.RolloutState
		wantExit int
		want     []string
	}{
		{workflows.RolloutCompleted, 0, []string{"state    completed", "nodes    6: 6 provisioned, 0 failed, 0 skipped", "ended    "}},
		{workflows.RolloutFailed, 1, []string{"state    failed", "5 provisioned, 1 failed, 1 skipped", "skipped  r02n02",
			"NODE    RACK  STEP               ERROR", "r01n03  r01   awaiting-check-in  no check-in within 10m0s"}},
		{workflows.RolloutCancelled, 1, []string{"state    cancelled"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res := workflows.RolloutResult{ID: "r1", Image: "demo", Version: "v1", State: tt.state, Total: 6,
				Provisioned: []string{"r01n01", "r01n02", "r01n04", "r02n01", "r02n03", "r02n04"},
				Started:     started, Ended: started.Add(90 * time.Second)}
			if tt.state != workflows.RolloutCompleted {
				res.Provisioned = res.Provisioned[:5]
				res.Failures, res.Skipped = []workflows.NodeFailure{fail3}, []string{"r02n02"}
			}
			src := newFakeSource(res, nil, script()...)
			var out bytes.Buffer
			a := app()
			a.Writer = &out
			c := cli.NewContext(a, flag.NewFlagSet("watch", flag.ContinueOnError), nil)
			c.Context = ctx
			err := watchAndReport(c, src, "r1", time.Millisecond)
			exit := 0
			if err != nil {
				var ec cli.ExitCoder
				if !errors.As(err, &ec) {
					t.Fatalf("err = %v, want an exit status", err)
				}
				exit = ec.ExitCode()
			}
			if exit != tt.wantExit {
				t.Errorf("exit status %d, want %d (err %v)", exit, tt.wantExit, err)
			}
			for _, s := range append(tt.want, "rollout  r1", "image    demo@v1", "(1m30s)") {
				if !strings.Contains(out.String(), s) {
					t.Errorf("report lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}

// TestPrintSnapshot renders a running rollout's progress for `show`.
func TestPrintSnapshot(t *testing.T) {
	p := script()[5].p
	p.ETA = time.Now().Add(time.Hour)
	var out bytes.Buffer
	if err := printSnapshot(&out, p); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"state    paused", "nodes    6: 2 provisioned, 1 failed, 1 running", "eta      ",
		"RACK  TOTAL  PENDING  RUNNING  PROVISIONED  FAILED  STATE", "r01   4      0        1        2            1       paused",
		"r01n03  r01   awaiting-check-in  no check-in within 10m0s"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("snapshot lacks %q:\n%s", s, out.String())
		}
	}
}

// expectUsageError runs the CLI with args and fails t unless it exits with
// the usage status and prints the usage.
func expectUsageError(t *testing.T, args []string) {
	t.Helper()
	var out bytes.Buffer
	a := app()
	a.Writer, a.ErrWriter = &out, &out
	err := a.Run(args)
	var exit cli.ExitCoder
	if !errors.As(err, &exit) || exit.ExitCode() != exitUsage {
		t.Fatalf("%q: err = %v, want exit status %d", args, err, exitUsage)
	}
	if !bytes.Contains(out.Bytes(), []byte("USAGE")) {
		t.Errorf("no usage printed:\n%s", out.String())
	}
}
