package dev

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"

	"github.com/rackflow/rackflow/activities/inventory"
	"github.com/rackflow/rackflow/dev/vrack"
	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

// testLimits are rack r01's limits in these tests (inventory racks[].limits).
var testLimits = inventory.Limits{
	Clones: 2, PowerOns: 2, PowerOnInterval: inventory.Duration(time.Second),
	InFlight: 3, PermitLease: inventory.Duration(3 * time.Second),
}

// span is one activity execution as a worker ran it.
type span struct {
	Activity   string
	Node       string
	WorkflowID string
	Run        string // workflow run ID
	Queue      string
	Disk       bool // PowerCycle to the local disk (undo, not under a permit)
	Start, End time.Time
	Err        error
}

// recorder is the "virtual hardware that records every activity's start and
// end": a worker interceptor wrapping every activity the workers run. It
// also gives activities a latency (by activity name, before they run) so
// that the rack's limits are reached: a 1 MiB clone on the dir store and
// an emulated power cycle take milliseconds.
type recorder struct {
	interceptor.WorkerInterceptorBase
	latency map[string]time.Duration
	mu      sync.Mutex
	spans   []span
}

func (r *recorder) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	a := &recordActivity{r: r}
	a.Next = next
	return a
}

func (r *recorder) all() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

type recordActivity struct {
	interceptor.ActivityInboundInterceptorBase
	r *recorder
}

func (a *recordActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	s := span{
		Activity: info.ActivityType.Name, WorkflowID: info.WorkflowExecution.ID, Run: info.WorkflowExecution.RunID,
		Queue: info.TaskQueue, Start: time.Now(),
	}
	for _, arg := range in.Args {
		switch v := arg.(type) {
		case workflows.CloneInput:
			s.Node = v.Node
		case workflows.SetBootInput:
			s.Node = v.Node
		case workflows.PowerCycleInput:
			s.Node, s.Disk = v.Node, v.Disk
		case workflows.PermitRequest:
			s.Node = v.Node
		case string:
			if info.ActivityType.Name != workflows.ActivityRequestPermit { // (rack, request)
				s.Node = v
			}
		}
	}
	var res any
	err := sleep(ctx, a.r.latency[s.Activity])
	if err == nil {
		res, err = a.Next.ExecuteActivity(ctx, in)
	}
	s.End, s.Err = time.Now(), err
	a.r.mu.Lock()
	a.r.spans = append(a.r.spans, s)
	a.r.mu.Unlock()
	return res, err
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxConcurrent is the most intervals open at one instant; an interval
// ending when another starts does not overlap it.
func maxConcurrent(spans []span) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, s := range spans {
		edges = append(edges, edge{s.Start, +1}, edge{s.End, -1})
	}
	sort.SliceStable(edges, func(i, j int) bool {
		if !edges[i].at.Equal(edges[j].at) {
			return edges[i].at.Before(edges[j].at)
		}
		return edges[i].delta < edges[j].delta
	})
	n, peak := 0, 0
	for _, e := range edges {
		n += e.delta
		peak = max(peak, n)
	}
	return peak
}

// inFlight is each Provision run's span on its rack: from its first rack
// activity (the clone, after the in-flight permit was granted) to its last
// (the final boot profile, or the last undo), before the permit returns.
// A RackRollout's own rack activity (EndSeeding, after its nodes ended) is
// no node in flight.
func inFlight(spans []span, rack string) []span {
	byRun := map[string]*span{}
	var runs []string
	for _, s := range spans {
		if s.Queue != workflows.RackTaskQueue(rack) || s.Activity == workflows.ActivityEndSeeding {
			continue
		}
		r, ok := byRun[s.Run]
		if !ok {
			c := s
			c.Activity = "in-flight"
			byRun[s.Run] = &c
			runs = append(runs, s.Run)
			continue
		}
		if s.Start.Before(r.Start) {
			r.Start = s.Start
		}
		if s.End.After(r.End) {
			r.End = s.End
		}
	}
	out := make([]span, 0, len(runs))
	for _, run := range runs {
		out = append(out, *byRun[run])
	}
	return out
}

func filter(spans []span, keep func(span) bool) []span {
	var out []span
	for _, s := range spans {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// startLimitsEnv starts the embedded default with an inventory of its own:
// rack r01 of nodes virtual nodes made as GenerateVirtual makes them, with
// testLimits, and rec wrapping every activity.
func startLimitsEnv(ctx context.Context, t *testing.T, nodes int, faults map[string]vrack.Fault, rec *recorder) *Env {
	t.Helper()
	dir := t.TempDir()
	inv, err := inventory.GenerateVirtual(1, nodes, "127.0.0.1", freePort(t))
	if err != nil {
		t.Fatal(err)
	}
	inv.Racks[0].Limits = testLimits
	data, err := inv.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	o := Options{
		StateDir: dir, Inventory: path, InMemory: true, Store: "dir",
		FrontendAddr: "127.0.0.1:0", DHCPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		ImageSize: 1 << 20, Faults: faults,
	}
	if rec != nil {
		o.Interceptors = []interceptor.WorkerInterceptor{rec}
	}
	env, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	if r, ok := env.Inventory.Rack("r01"); !ok || r.Limits != testLimits {
		t.Fatalf("rack r01 limits = %+v, want %+v", r.Limits, testLimits)
	}
	return env
}

// startRollout starts a Rollout through the Temporal API, as another
// system would.
func startRollout(ctx context.Context, t *testing.T, env *Env, in workflows.RolloutInput) {
	t.Helper()
	_, err := env.Client.Temporal().ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.RolloutWorkflowID(in.ID), TaskQueue: workflows.TaskQueue,
	}, "Rollout", in)
	if err != nil {
		t.Fatalf("start rollout %s: %v", in.ID, err)
	}
}

// waitRollout returns a rollout's report: its result, or the one carried
// by its ErrRolloutNotCompleted error (with that error).
func waitRollout(ctx context.Context, t *testing.T, env *Env, id string) (workflows.RolloutResult, error) {
	t.Helper()
	var res workflows.RolloutResult
	err := env.Client.Temporal().GetWorkflow(ctx, workflows.RolloutWorkflowID(id), "").Get(ctx, &res)
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Type() == workflows.ErrRolloutNotCompleted {
		if derr := app.Details(&res); derr != nil {
			t.Fatalf("rollout %s: report in the error details: %v", id, derr)
		}
	} else if err != nil {
		t.Fatalf("rollout %s: %v", id, err)
	}
	return res, err
}

// limiterState queries rack's limiter.
func limiterState(ctx context.Context, t *testing.T, env *Env, rack string) workflows.LimiterState {
	t.Helper()
	v, err := env.Client.Temporal().QueryWorkflow(ctx, workflows.RackLimiterWorkflowID(rack), "", workflows.QueryPermits)
	if err != nil {
		t.Fatalf("query %s: %v", workflows.QueryPermits, err)
	}
	var st workflows.LimiterState
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// limiterSignal is a signal rack's limiter sent, read from its history.
type limiterSignal struct {
	Signal, Target, Run string
	ID                  string    // permit request ID granted or renewed
	At                  time.Time // workflow time the limiter decided it (its task's start)
	Failed              bool      // the target no longer ran
}

// limiterSignals reads every permit and lease signal from the history of
// rack's limiter (its current run).
func limiterSignals(ctx context.Context, t *testing.T, env *Env, rack string) []limiterSignal {
	t.Helper()
	iter := env.Client.Temporal().GetWorkflowHistory(ctx, workflows.RackLimiterWorkflowID(rack), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	dc := converter.GetDefaultDataConverter()
	var out []limiterSignal
	byEvent := map[int64]int{}
	var now time.Time
	for iter.HasNext() {
		e, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch e.GetEventType() {
		case enums.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			now = e.GetEventTime().AsTime()
		case enums.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			a := e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes()
			var g workflows.PermitGrant
			if err := dc.FromPayloads(a.GetInput(), &g); err != nil {
				t.Fatalf("limiter signal %s: %v", a.GetSignalName(), err)
			}
			byEvent[e.GetEventId()] = len(out)
			out = append(out, limiterSignal{
				Signal: a.GetSignalName(), Target: a.GetWorkflowExecution().GetWorkflowId(), Run: a.GetWorkflowExecution().GetRunId(), ID: g.ID, At: now,
			})
		case enums.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED:
			if i, ok := byEvent[e.GetSignalExternalWorkflowExecutionFailedEventAttributes().GetInitiatedEventId()]; ok {
				out[i].Failed = true
			}
		}
	}
	return out
}

// TestRackLimitsHoldAcrossRollouts: two rollouts over overlapping nodes of
// rack r01 and a standalone provision on the same rack run at once; the
// activity records show that the rack's clone, power-on and in-flight
// limits held across all of them and that power-ons were staggered.
func TestRackLimitsHoldAcrossRollouts(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Clones take 1 s and power cycles 2.5 s: three nodes in flight want
	// to clone at once, and a third power cycle is due (stagger 1 s) while
	// two still run.
	rec := &recorder{latency: map[string]time.Duration{
		workflows.ActivityClone: time.Second, workflows.ActivityPowerCycle: 2500 * time.Millisecond,
	}}
	env := startLimitsEnv(ctx, t, 8, nil, rec)
	begin := time.Now()

	a := []string{"r01n01", "r01n02", "r01n03", "r01n04", "r01n05"}
	b := []string{"r01n03", "r01n04", "r01n05", "r01n06", "r01n07"}
	for id, nodes := range map[string][]string{"limits-a": a, "limits-b": b} {
		startRollout(ctx, t, env, workflows.RolloutInput{
			ID: id, Selector: workflows.Selector{Nodes: nodes}, Image: DemoImage, Version: "v2", CheckInTimeout: time.Minute,
		})
	}
	run, err := env.Client.Provision(ctx, workflows.ProvisionInput{Node: "r01n08", Image: DemoImage, Version: "v2", CheckInTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.WaitProvision(ctx, run); err != nil {
		t.Fatalf("standalone provision of r01n08: %v", err)
	}
	provisioned := map[string]bool{"r01n08": true}
	busy := 0
	for _, id := range []string{"limits-a", "limits-b"} {
		res, err := waitRollout(ctx, t, env, id)
		if err != nil || res.State != workflows.RolloutCompleted {
			t.Errorf("rollout %s: %s, %v", id, res.State, err)
		}
		for _, n := range res.Provisioned {
			provisioned[n] = true
		}
		// A node in both rollouts at once runs in one; the other reports it busy.
		for _, f := range res.Failures {
			if f.Step != "busy" || !slices.Contains(a, f.Node) || !slices.Contains(b, f.Node) {
				t.Errorf("rollout %s: %s failed at %q (%s); only nodes of both rollouts may fail, as busy", id, f.Node, f.Step, f.Error)
			}
			busy++
		}
	}
	elapsed := time.Since(begin)
	if busy == 0 {
		t.Error("no node reported busy: r01n03 starts in both rollouts' first window")
	}
	for _, n := range env.Inventory.Nodes {
		if !provisioned[n.Name] {
			t.Errorf("%s was not provisioned", n.Name)
		}
	}

	spans := rec.all()
	for _, s := range spans {
		if s.Err != nil {
			t.Errorf("%s of %s failed: %v", s.Activity, s.Node, s.Err)
		}
	}
	clones := filter(spans, func(s span) bool { return s.Activity == workflows.ActivityClone })
	powers := filter(spans, func(s span) bool { return s.Activity == workflows.ActivityPowerCycle && !s.Disk })
	flights := inFlight(spans, "r01")
	if len(clones) < 8 || len(powers) < 8 || len(flights) < 8 {
		t.Fatalf("%d clones, %d power cycles, %d provisions recorded; want ≥ 8 each", len(clones), len(powers), len(flights))
	}
	for _, c := range []struct {
		what  string
		spans []span
		limit int
	}{
		{"clones", clones, testLimits.Clones},
		{"power cycles", powers, testLimits.PowerOns},
		{"nodes in flight", flights, testLimits.InFlight},
	} {
		got := maxConcurrent(c.spans)
		t.Logf("%d %s, at most %d at once (limit %d)", len(c.spans), c.what, got, c.limit)
		if got > c.limit {
			t.Errorf("%d %s at once, limit %d", got, c.what, c.limit)
		}
	}

	// Power-ons are staggered: the limiter's power-on grants are at least
	// the interval apart in its workflow time (exact), and every power
	// cycle started after its own grant. The gaps between
	// the activities' wall-clock starts are only logged: each start
	// follows its grant by the server's task dispatch (40–450 ms measured
	// on 2 busy cores), so they can be closer than the interval by that
	// jitter without any permit being broken.
	stagger := time.Duration(testLimits.PowerOnInterval)
	var grants []limiterSignal
	for _, s := range limiterSignals(ctx, t, env, "r01") {
		if s.Signal == workflows.SignalPermit && strings.HasPrefix(s.ID, string(workflows.PermitPowerOn)) && !s.Failed {
			grants = append(grants, s)
		}
	}
	for i := 1; i < len(grants); i++ {
		if gap := grants[i].At.Sub(grants[i-1].At); gap < stagger {
			t.Errorf("power-on grants to %s and %s %s apart (workflow time), want ≥ %s", grants[i-1].Target, grants[i].Target, gap, stagger)
		}
	}
	if len(grants) != len(powers) {
		t.Fatalf("%d power-on grants for %d power cycles", len(grants), len(powers))
	}
	slices.SortFunc(powers, func(x, y span) int { return x.Start.Compare(y.Start) })
	grantsOf := map[string][]limiterSignal{} // run → its power-on grants in order
	for _, g := range grants {
		grantsOf[g.Run] = append(grantsOf[g.Run], g)
	}
	minGap := time.Hour
	for i, p := range powers {
		if len(grantsOf[p.Run]) == 0 {
			t.Errorf("power cycle of %s (run %s) at %s without a power-on grant", p.Node, p.Run, p.Start.Format(time.StampMilli))
		} else if g := grantsOf[p.Run][0]; p.Start.Before(g.At) {
			t.Errorf("power cycle of %s started at %s, before its grant at %s", p.Node, p.Start.Format(time.StampMilli), g.At.Format(time.StampMilli))
		}
		if len(grantsOf[p.Run]) > 0 {
			grantsOf[p.Run] = grantsOf[p.Run][1:]
		}
		if i > 0 {
			minGap = min(minGap, p.Start.Sub(powers[i-1].Start))
		}
	}
	st := limiterState(ctx, t, env, "r01")
	if len(st.Held) != 0 || len(st.Queue) != 0 {
		t.Errorf("limiter still holds %v, queues %v", st.Held, st.Queue)
	}
	t.Logf("%d nodes in %.1fs, %d busy; power cycles started ≥ %s apart; limiter: %d grants, %d reclaimed",
		len(provisioned), elapsed.Seconds(), busy, minGap.Round(time.Millisecond), st.Grants, st.Reclaimed)
}

// TestTerminateProvisionHoldingPermit: a Provision terminated while it
// holds its in-flight permit (its node never checks in) does not keep the
// rack stuck: the permit returns after its lease and three other nodes, as
// many as the in-flight limit, are all provisioned.
func TestTerminateProvisionHoldingPermit(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := startLimitsEnv(ctx, t, 4, map[string]vrack.Fault{"r01n01": vrack.FaultNoCheckIn}, nil)
	tc := env.Client.Temporal()

	stuck, err := env.Client.Provision(ctx, workflows.ProvisionInput{Node: "r01n01", Image: DemoImage, Version: "v2", CheckInTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := env.Client.Progress(ctx, stuck)
		if err == nil && p.Phase == workflows.PhaseAwaiting {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("r01n01 never awaited its check-in: %+v, %v", p, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	st := limiterState(ctx, t, env, "r01")
	if !slices.ContainsFunc(st.Held, func(h workflows.HeldPermit) bool {
		return h.HolderID == stuck.WorkflowID && h.Kind == workflows.PermitInFlight
	}) {
		t.Fatalf("r01n01 holds no in-flight permit while it awaits its check-in: %+v", st.Held)
	}
	if err := tc.TerminateWorkflow(ctx, stuck.WorkflowID, stuck.RunID, "test: terminated while holding a permit"); err != nil {
		t.Fatal(err)
	}
	terminated := time.Now()

	nodes := []string{"r01n02", "r01n03", "r01n04"}
	runs := map[string]starter.Run{}
	for _, n := range nodes {
		r, err := env.Client.Provision(ctx, workflows.ProvisionInput{Node: n, Image: DemoImage, Version: "v2", CheckInTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		runs[n] = r
	}
	for _, n := range nodes {
		res, err := env.Client.WaitProvision(ctx, runs[n])
		if err != nil || res.Node != n {
			t.Errorf("%s: %+v, %v", n, res, err)
		}
	}
	t.Logf("3 nodes provisioned %.1fs after the holder was terminated", time.Since(terminated).Seconds())

	st = limiterState(ctx, t, env, "r01")
	if st.Reclaimed < 1 {
		t.Errorf("limiter reclaimed %d permits, want ≥ 1", st.Reclaimed)
	}
	if len(st.Held) != 0 || len(st.Queue) != 0 {
		t.Errorf("limiter still holds %v, queues %v", st.Held, st.Queue)
	}
	// The terminated holder's permit was the one reclaimed: its lease
	// check could not reach it.
	reclaimed := slices.ContainsFunc(limiterSignals(ctx, t, env, "r01"), func(s limiterSignal) bool {
		return s.Target == stuck.WorkflowID && s.Signal == workflows.SignalLease && s.Failed
	})
	if !reclaimed {
		t.Errorf("no failed lease check of %s in the limiter's history", stuck.WorkflowID)
	}
}

// TestRolloutFailureBudget: over the real stack, a rollout of 6 nodes, one
// at a time, with a per-rack budget of 1 failure, meets 2 nodes that never
// check in: it stops after the second, ends failed, reports exactly those
// two with their step and skips the nodes after them.
func TestRolloutFailureBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	faults := map[string]vrack.Fault{"r01n02": vrack.FaultNoCheckIn, "r01n04": vrack.FaultNoCheckIn}
	env := startLimitsEnv(ctx, t, 6, faults, nil)
	begin := time.Now()
	startRollout(ctx, t, env, workflows.RolloutInput{
		ID: "budget", Selector: workflows.Selector{Racks: []string{"r01"}}, Image: DemoImage, Version: "v2",
		Window: 1, RackMaxFailures: workflows.FailureBudget{Count: 1}, CheckInTimeout: 2 * time.Second,
	})
	res, err := waitRollout(ctx, t, env, "budget")
	t.Logf("rollout ended in %.1fs: %v", time.Since(begin).Seconds(), err)
	if !workflows.IsApplicationError(err, workflows.ErrRolloutNotCompleted) {
		t.Fatalf("rollout error = %v, want %s", err, workflows.ErrRolloutNotCompleted)
	}
	if res.State != workflows.RolloutFailed || res.Total != 6 {
		t.Errorf("state %s of %d nodes, want %s of 6", res.State, res.Total, workflows.RolloutFailed)
	}
	var failed []string
	for _, f := range res.Failures {
		failed = append(failed, f.Node)
		if f.Step != workflows.ErrCheckInTimeout || f.Rack != "r01" || f.Error == "" {
			t.Errorf("failure %+v, want step %s with its error", f, workflows.ErrCheckInTimeout)
		}
	}
	slices.Sort(failed)
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"failed", failed, []string{"r01n02", "r01n04"}},
		{"provisioned", res.Provisioned, []string{"r01n01", "r01n03"}},
		{"skipped", res.Skipped, []string{"r01n05", "r01n06"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	for _, n := range []string{"r01n05", "r01n06"} {
		if st := env.Rack.Node(n).State(); st.NetBoots != 0 {
			t.Errorf("skipped node %s netbooted %d times", n, st.NetBoots)
		}
	}
}
