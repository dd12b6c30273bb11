package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// fleet is a Rollout in the SDK test environment with every activity
// replaced by a stand-in; nodes check in 30 s after their power cycle
// unless listed in silent. Racks are named by the node prefix (r01n01 → r01).
type fleet struct {
	t       *testing.T
	env     *testsuite.TestWorkflowEnvironment
	mu      sync.Mutex
	runs    map[string]string // node → run ID of its install profile
	started []string          // nodes in power-cycle order
	silent  map[string]bool   // nodes that never check in
	undone  []string          // nodes whose root was destroyed
	// swarm makes Export publish a .torrent per run (the swarm transport);
	// exported is node → run ID of its last export, seeded task queue →
	// the EndSeeding attempts there, failSeeding a queue whose EndSeeding
	// always fails.
	swarm       bool
	exported    map[string]string
	seeded      map[string][][]Torrent
	failSeeding string
}

func newFleet(t *testing.T, silent ...string) *fleet {
	var s testsuite.WorkflowTestSuite
	f := &fleet{t: t, env: s.NewTestWorkflowEnvironment(), runs: map[string]string{}, silent: map[string]bool{},
		exported: map[string]string{}, seeded: map[string][][]Torrent{}}
	for _, n := range silent {
		f.silent[n] = true
	}
	f.env.RegisterWorkflow(Rollout)
	f.env.RegisterWorkflow(RackRollout)
	f.env.RegisterWorkflow(Provision)
	reg := func(name string, fn any) { f.env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(ActivityResolveNodes, func(_ context.Context, s Selector) ([]RackNodes, error) {
		byRack := map[string][]string{}
		var racks []string
		add := func(n string) {
			r := n[:3]
			if _, ok := byRack[r]; !ok {
				racks = append(racks, r)
			}
			byRack[r] = append(byRack[r], n)
		}
		for _, r := range s.Racks {
			for i := 1; i <= 3; i++ {
				add(fmt.Sprintf("%sn%02d", r, i))
			}
		}
		for _, n := range s.Nodes {
			add(n)
		}
		var out []RackNodes
		for _, r := range racks {
			out = append(out, RackNodes{Rack: r, Nodes: byRack[r]})
		}
		return out, nil
	})
	reg(ActivityLookupNode, func(_ context.Context, node string) (NodeInfo, error) {
		return NodeInfo{Name: node, Rack: node[:3], MACs: []string{"02:00:00:00:00:01"}}, nil
	})
	reg(ActivityClone, func(_ context.Context, in CloneInput) (Root, error) {
		return Root{Node: in.Node, Image: in.Image, Version: in.Version, Digest: digest}, nil
	})
	reg(ActivityExport, func(ctx context.Context, node string) (ExportResult, error) {
		res := ExportResult{URL: "http://x/exports/" + node + "/image.raw", Digest: digest}
		if f.swarm {
			run := activity.GetInfo(ctx).WorkflowExecution.RunID
			f.mu.Lock()
			f.exported[node] = run
			f.mu.Unlock()
			res.TorrentURL, res.InfoHash = "http://x/torrents/"+node+"/"+run+".torrent", strings.Repeat("0f", 20)
		}
		return res, nil
	})
	reg(ActivityEndSeeding, func(ctx context.Context, torrents []Torrent) error {
		q := activity.GetInfo(ctx).TaskQueue
		f.mu.Lock()
		f.seeded[q] = append(f.seeded[q], torrents)
		f.mu.Unlock()
		if q == f.failSeeding {
			return errors.New("injected: the rack's netboot store is unwritable")
		}
		return nil
	})
	reg(ActivitySetBoot, func(_ context.Context, in SetBootInput) error {
		if in.Mode == BootInstall {
			f.mu.Lock()
			f.runs[in.Node] = in.Run
			f.mu.Unlock()
		}
		return nil
	})
	reg(ActivityPowerCycle, func(_ context.Context, in PowerCycleInput) error {
		if in.Disk || in.Hard {
			return nil
		}
		f.mu.Lock()
		f.started = append(f.started, in.Node)
		run, silent := f.runs[in.Node], f.silent[in.Node]
		f.mu.Unlock()
		if !silent {
			f.env.RegisterDelayedCallback(func() {
				_ = f.env.SignalWorkflowByID(NodeWorkflowID(in.Node), SignalCheckIn, CheckIn{Node: in.Node, Run: run, Status: "ok", Digest: digest})
			}, 30*time.Second)
		}
		return nil
	})
	reg(ActivityUnexport, func(context.Context, string) error { return nil })
	reg(ActivityDestroyRoot, func(_ context.Context, node string) error {
		f.mu.Lock()
		f.undone = append(f.undone, node)
		f.mu.Unlock()
		return nil
	})
	return f
}

func (f *fleet) run(in RolloutInput) (RolloutResult, error) {
	if in.ID == "" {
		in.ID = "t1"
	}
	in.Image, in.Version = "demo", "v2"
	if in.CheckInTimeout == 0 {
		in.CheckInTimeout = 5 * time.Minute
	}
	f.env.ExecuteWorkflow(Rollout, in)
	if !f.env.IsWorkflowCompleted() {
		f.t.Fatal("rollout did not complete")
	}
	var res RolloutResult
	err := f.env.GetWorkflowResult(&res)
	if err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) && app.Type() == ErrRolloutNotCompleted {
			if derr := app.Details(&res); derr != nil {
				f.t.Fatalf("result in error details: %v", derr)
			}
		}
	}
	return res, err
}

// exports is the .torrents of nodes' last exports, as EndSeeding gets them.
func (f *fleet) exports(nodes ...string) []Torrent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Torrent
	for _, n := range nodes {
		if f.exported[n] == "" {
			f.t.Fatalf("%s was not exported", n)
		}
		out = append(out, Torrent{Node: n, Run: f.exported[n]})
	}
	return out
}

// wantSeeded checks that EndSeeding ran on each rack's queue attempts
// times (once when it succeeds), each time with the torrents of want (in
// any order), and on no other queue.
func (f *fleet) wantSeeded(attempts map[string]int, want map[string][]Torrent) {
	f.t.Helper()
	for rack, torrents := range want {
		calls := f.seeded[RackTaskQueue(rack)]
		n := attempts[rack]
		if n == 0 {
			n = 1
		}
		if len(calls) != n {
			f.t.Errorf("EndSeeding ran %d times on rack %s, want %d: %v", len(calls), rack, n, calls)
		}
		byNode := func(x, y Torrent) int { return strings.Compare(x.Node, y.Node) }
		torrents = slices.SortedFunc(slices.Values(torrents), byNode)
		for _, got := range calls {
			if got = slices.SortedFunc(slices.Values(got), byNode); !slices.Equal(got, torrents) {
				f.t.Errorf("EndSeeding on rack %s for %v, want %v", rack, got, torrents)
			}
		}
	}
	if len(f.seeded) != len(want) {
		f.t.Errorf("EndSeeding ran on queues %v, want racks %v", f.seeded, want)
	}
}

func failedNodes(res RolloutResult) []string {
	var out []string
	for _, fl := range res.Failures {
		out = append(out, fl.Node)
	}
	slices.Sort(out)
	return out
}

func TestRolloutTwoRacks(t *testing.T) {
	f := newFleet(t)
	res, err := f.run(RolloutInput{Selector: Selector{Racks: []string{"r01", "r02"}}, Window: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != RolloutCompleted || res.Total != 6 || len(res.Provisioned) != 6 || len(res.Failures) != 0 {
		t.Fatalf("result = %+v", res)
	}
	v, err := f.env.QueryWorkflow(QueryRolloutEvents, 4)
	if err != nil {
		t.Fatal(err)
	}
	var evs []NodeEvent
	if err := v.Get(&evs); err != nil || len(evs) != 2 || evs[0].Seq != 5 || !evs[1].OK {
		t.Errorf("events after 4 = %+v, %v", evs, err)
	}
	f.wantSeeded(nil, nil) // no swarm, no seeding to end
}

// TestRolloutEndsSeeding: when a rack's share ends, its worker (the rack
// queue) is told once to end the seeding of the exports of the nodes it
// provisioned, each bound to the run that exported it, and of no others (a
// failed node's export was undone already). An EndSeeding that keeps
// failing is retried a few times and does not fail the rollout.
func TestRolloutEndsSeeding(t *testing.T) {
	f := newFleet(t, "r02n02")
	f.swarm, f.failSeeding = true, RackTaskQueue("r02")
	res, err := f.run(RolloutInput{Selector: Selector{Racks: []string{"r01", "r02"}}, Window: 1, MaxFailures: FailureBudget{Count: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != RolloutCompleted || len(res.Provisioned) != 5 {
		t.Fatalf("result = %+v", res)
	}
	f.wantSeeded(map[string]int{"r02": int(endSeedingOpts.RetryPolicy.MaximumAttempts)}, map[string][]Torrent{
		"r01": f.exports("r01n01", "r01n02", "r01n03"),
		"r02": f.exports("r02n01", "r02n03"),
	})
}

// TestRolloutEndsSeedingWhenStopped: a rack whose failure budget is spent
// ends the seeding of what it provisioned.
func TestRolloutEndsSeedingWhenStopped(t *testing.T) {
	f := newFleet(t, "r01n02", "r01n03")
	f.swarm = true
	res, err := f.run(RolloutInput{
		Selector: Selector{Nodes: []string{"r01n01", "r01n02", "r01n03", "r01n04", "r01n05"}},
		Window:   1, RackMaxFailures: FailureBudget{Count: 1},
	})
	if !IsApplicationError(err, ErrRolloutNotCompleted) || len(res.Skipped) != 2 {
		t.Fatalf("error %v, result %+v", err, res)
	}
	f.wantSeeded(nil, map[string][]Torrent{"r01": f.exports("r01n01")})
}

// TestRolloutEndsSeedingWhenCancelled: a cancelled rollout (no undo) lets
// the running node finish, then ends the seeding of both provisioned nodes.
func TestRolloutEndsSeedingWhenCancelled(t *testing.T) {
	f := newFleet(t)
	f.swarm = true
	f.env.RegisterDelayedCallback(func() { f.env.SignalWorkflow(SignalCancel, CancelRequest{}) }, 45*time.Second)
	res, err := f.run(RolloutInput{Selector: Selector{Racks: []string{"r01"}}, Window: 1})
	if !IsApplicationError(err, ErrRolloutNotCompleted) || res.State != RolloutCancelled {
		t.Fatalf("error %v, state %s", err, res.State)
	}
	if !slices.Equal(res.Provisioned, []string{"r01n01", "r01n02"}) || !slices.Equal(res.Skipped, []string{"r01n03"}) {
		t.Fatalf("provisioned %v, skipped %v", res.Provisioned, res.Skipped)
	}
	f.wantSeeded(nil, map[string][]Torrent{"r01": f.exports("r01n01", "r01n02")})
}

// TestRackRolloutEndsSeedingAcrossContinueAsNew: a rack's share that
// continues as new does not end the seeding then; it carries the
// provisioned nodes' .torrents into the next run, which ends them all.
func TestRackRolloutEndsSeedingAcrossContinueAsNew(t *testing.T) {
	f := newFleet(t, "r01n02")
	f.swarm = true
	f.env.SetCurrentHistoryLength(rackRolloutMaxEvents + 1) // drain after the first node ends
	in := RackRolloutInput{RolloutID: "t1", Rack: "r01", Nodes: []string{"r01n01", "r01n02", "r01n03", "r01n04"},
		Image: "demo", Version: "v2", Window: 2, CheckInTimeout: 5 * time.Minute}
	f.env.ExecuteWorkflow(RackRollout, in)
	var can *workflow.ContinueAsNewError
	if err := f.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	if len(f.seeded) != 0 {
		t.Fatalf("EndSeeding before continue-as-new: %v", f.seeded)
	}
	var next RackRolloutInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(next.Nodes, []string{"r01n03", "r01n04"}) || !slices.Equal(next.Seeding, f.exports("r01n01")) {
		t.Fatalf("next run: nodes %v, seeding %v", next.Nodes, next.Seeding)
	}

	g := newFleet(t)
	g.swarm = true
	g.env.ExecuteWorkflow(RackRollout, next)
	var res RackRolloutResult
	if err := g.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slices.Sorted(slices.Values(res.Provisioned)), []string{"r01n01", "r01n03", "r01n04"}) {
		t.Fatalf("provisioned %v", res.Provisioned)
	}
	g.wantSeeded(nil, map[string][]Torrent{"r01": append(f.exports("r01n01"), g.exports("r01n03", "r01n04")...)})
}

func TestRolloutFailureBudget(t *testing.T) {
	// Window 1 runs r01's nodes one after another: n01 ok, n02 and n03 never
	// check in; a budget of 1 stops the rack after the second failure.
	f := newFleet(t, "r01n02", "r01n03")
	res, err := f.run(RolloutInput{
		Selector: Selector{Nodes: []string{"r01n01", "r01n02", "r01n03", "r01n04", "r01n05"}},
		Window:   1, RackMaxFailures: FailureBudget{Count: 1},
	})
	if !IsApplicationError(err, ErrRolloutNotCompleted) {
		t.Fatalf("error = %v, want %s", err, ErrRolloutNotCompleted)
	}
	if res.State != RolloutFailed {
		t.Errorf("state = %s", res.State)
	}
	if got := failedNodes(res); !slices.Equal(got, []string{"r01n02", "r01n03"}) {
		t.Errorf("failed = %v, want r01n02 r01n03", got)
	}
	for _, fl := range res.Failures {
		if fl.Step != ErrCheckInTimeout || fl.Rack != "r01" || fl.Error == "" {
			t.Errorf("failure = %+v", fl)
		}
	}
	if !slices.Equal(res.Skipped, []string{"r01n04", "r01n05"}) || !slices.Equal(res.Provisioned, []string{"r01n01"}) {
		t.Errorf("skipped %v, provisioned %v", res.Skipped, res.Provisioned)
	}
}

// TestRolloutOverallBudget: the overall budget is checked as racks report,
// so a rack may start a node or two before the stop reaches it, but the
// rollout ends failed and lists exactly the nodes that failed.
func TestRolloutOverallBudget(t *testing.T) {
	f := newFleet(t, "r01n01", "r02n01", "r01n02", "r02n02")
	res, err := f.run(RolloutInput{Selector: Selector{Racks: []string{"r01", "r02"}}, Window: 1, MaxFailures: FailureBudget{Count: 1}})
	if !IsApplicationError(err, ErrRolloutNotCompleted) || res.State != RolloutFailed {
		t.Fatalf("error %v, state %s", err, res.State)
	}
	for _, n := range failedNodes(res) {
		if !f.silent[n] {
			t.Errorf("%s reported failed but it checks in", n)
		}
	}
	if len(res.Failures)+len(res.Provisioned)+len(res.Skipped) != 6 || len(res.Skipped) == 0 {
		t.Errorf("result = %+v", res)
	}
}

func TestRolloutWithinBudgetCompletes(t *testing.T) {
	f := newFleet(t, "r01n02")
	res, err := f.run(RolloutInput{Selector: Selector{Racks: []string{"r01"}}, MaxFailures: FailureBudget{Percent: 50}})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != RolloutCompleted || !slices.Equal(failedNodes(res), []string{"r01n02"}) || len(res.Provisioned) != 2 {
		t.Fatalf("result = %+v", res)
	}
}

func TestRolloutPauseResume(t *testing.T) {
	f := newFleet(t)
	var duringPause int
	f.env.RegisterDelayedCallback(func() { f.env.SignalWorkflow(SignalPause, nil) }, 10*time.Second)
	f.env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		duringPause = len(f.started)
		f.mu.Unlock()
		v, err := f.env.QueryWorkflow(QueryRolloutProgress)
		if err != nil {
			t.Error(err)
			return
		}
		var p RolloutProgress
		if err := v.Get(&p); err != nil || p.State != RolloutPaused || p.Provisioned != 1 {
			t.Errorf("progress while paused = %+v, %v", p, err)
		}
	}, 2*time.Hour)
	f.env.RegisterDelayedCallback(func() { f.env.SignalWorkflow(SignalResume, nil) }, 2*time.Hour+time.Second)
	res, err := f.run(RolloutInput{Selector: Selector{Racks: []string{"r01"}}, Window: 1})
	if err != nil {
		t.Fatal(err)
	}
	if duringPause != 1 {
		t.Errorf("%d nodes started before the resume, want 1 (the one running at the pause)", duringPause)
	}
	if len(res.Provisioned) != 3 {
		t.Errorf("result = %+v", res)
	}
}

func TestRolloutCancelWithUndo(t *testing.T) {
	f := newFleet(t, "r01n01")
	f.env.RegisterDelayedCallback(func() { f.env.SignalWorkflow(SignalCancel, CancelRequest{Undo: true}) }, time.Minute)
	res, err := f.run(RolloutInput{Selector: Selector{Racks: []string{"r01"}}, Window: 1})
	if !IsApplicationError(err, ErrRolloutNotCompleted) || res.State != RolloutCancelled {
		t.Fatalf("error %v, state %s", err, res.State)
	}
	if got := failedNodes(res); !slices.Equal(got, []string{"r01n01"}) || res.Failures[0].Step != "cancelled" {
		t.Errorf("failures = %+v", res.Failures)
	}
	if !slices.Equal(f.undone, []string{"r01n01"}) {
		t.Errorf("undone = %v, want the running node's root destroyed", f.undone)
	}
	if !slices.Equal(res.Skipped, []string{"r01n02", "r01n03"}) {
		t.Errorf("skipped = %v", res.Skipped)
	}
}

func TestRolloutAddNodes(t *testing.T) {
	f := newFleet(t)
	f.env.RegisterDelayedCallback(func() {
		f.env.SignalWorkflow(SignalAddNodes, AddNodes{Selector: Selector{Nodes: []string{"r01n09", "r02n01"}}})
	}, 10*time.Second)
	res, err := f.run(RolloutInput{Selector: Selector{Racks: []string{"r01"}}, Window: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"r01n01", "r01n02", "r01n03", "r01n09", "r02n01"}
	if !slices.Equal(res.Provisioned, want) || res.Total != 5 {
		t.Fatalf("provisioned %v of %d, want %v", res.Provisioned, res.Total, want)
	}
}

func TestRolloutReinstall(t *testing.T) {
	f := newFleet(t)
	f.swarm = true
	f.env.RegisterWorkflow(Reinstall)
	res, err := f.run(RolloutInput{Selector: Selector{Racks: []string{"r01"}}, Reinstall: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"r01n01", "r01n02", "r01n03"}
	if !slices.Equal(res.Provisioned, want) {
		t.Fatalf("provisioned %v, want %v", res.Provisioned, want)
	}
	// Every node ran Reinstall: its old root destroyed before the clone
	// (a Provision that succeeds destroys nothing).
	undone := slices.Sorted(slices.Values(f.undone))
	if !slices.Equal(undone, want) {
		t.Errorf("roots destroyed %v, want every node's: %v", undone, want)
	}
	f.wantSeeded(nil, map[string][]Torrent{"r01": f.exports(want...)})
}
