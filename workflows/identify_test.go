package workflows

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// identifyRig drives Identify in the SDK test environment: identifications
// are updates sent at workflow offsets, and every outcome is recorded under
// the label it was sent with.
type identifyRig struct {
	t        *testing.T
	env      *testsuite.TestWorkflowEnvironment
	outcomes map[string]*updateOutcome
	statuses map[string]IdentifyStatus
}

type updateOutcome struct {
	accepted bool
	rejected error
	result   Assignment
	err      error // the handler's error
	done     bool
}

func newIdentifyRig(t *testing.T) *identifyRig {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	r := &identifyRig{t: t, env: s.NewTestWorkflowEnvironment(), outcomes: map[string]*updateOutcome{}, statuses: map[string]IdentifyStatus{}}
	r.env.RegisterWorkflow(Identify)
	return r
}

// planOf is n positions r01n01… at 10.1.0.1… without slots.
func planOf(n int) []PlanEntry {
	p := make([]PlanEntry, n)
	for i := range p {
		p[i] = PlanEntry{Name: fmt.Sprintf("r01n%02d", i+1), IP: fmt.Sprintf("10.1.0.%d", i+1)}
	}
	return p
}

func mac(i int) string { return fmt.Sprintf("02:52:46:00:00:%02x", i) }

// identify sends the identify update for m at offset at, recorded as label.
func (r *identifyRig) identify(at time.Duration, label, m string) {
	r.env.RegisterDelayedCallback(func() { r.send(label, m) }, at)
}

func (r *identifyRig) send(label, m string) {
	o := &updateOutcome{}
	r.outcomes[label] = o
	r.env.UpdateWorkflow(UpdateIdentify, label, &testsuite.TestUpdateCallback{
		OnAccept: func() { o.accepted = true },
		OnReject: func(err error) { o.rejected = err; o.done = true },
		OnComplete: func(v any, err error) {
			o.done, o.err = true, err
			if err == nil {
				a, ok := v.(Assignment)
				if !ok {
					r.t.Errorf("%s: update result %T, want Assignment", label, v)
				}
				o.result = a
			}
		},
	}, IdentifyRequest{MAC: m, From: "10.9.0.7"})
}

func (r *identifyRig) signal(at time.Duration, name string, arg any) {
	r.env.RegisterDelayedCallback(func() { r.env.SignalWorkflow(name, arg) }, at)
}

func (r *identifyRig) status(at time.Duration, label string) {
	r.env.RegisterDelayedCallback(func() {
		v, err := r.env.QueryWorkflow(QueryIdentifyStatus)
		if err != nil {
			r.t.Errorf("status %s: %v", label, err)
			return
		}
		var s IdentifyStatus
		if err := v.Get(&s); err != nil {
			r.t.Errorf("status %s: %v", label, err)
		}
		r.statuses[label] = s
	}, at)
}

func (r *identifyRig) run(in IdentifyInput) IdentifyResult {
	r.t.Helper()
	r.env.ExecuteWorkflow(Identify, in)
	if !r.env.IsWorkflowCompleted() {
		r.t.Fatal("Identify did not complete")
	}
	if err := r.env.GetWorkflowError(); err != nil {
		r.t.Fatalf("Identify failed: %v", err)
	}
	var res IdentifyResult
	if err := r.env.GetWorkflowResult(&res); err != nil {
		r.t.Fatal(err)
	}
	return res
}

// assigned returns the assignment of label, failing unless it completed.
func (r *identifyRig) assigned(label string) Assignment {
	r.t.Helper()
	o := r.outcomes[label]
	if o == nil || !o.done || o.rejected != nil || o.err != nil || !o.accepted {
		r.t.Fatalf("%s: want an accepted, completed update, got %+v", label, o)
	}
	return o.result
}

// rejectedAs checks that label was rejected with an ApplicationError of
// type typ, and returns that error.
func (r *identifyRig) rejectedAs(label, typ string) *temporal.ApplicationError {
	r.t.Helper()
	o := r.outcomes[label]
	if o == nil || o.rejected == nil || o.accepted {
		r.t.Fatalf("%s: want rejected (%s), got %+v", label, typ, o)
	}
	var app *temporal.ApplicationError
	if !errors.As(o.rejected, &app) || app.Type() != typ {
		r.t.Fatalf("%s: rejected with %v, want type %s", label, o.rejected, typ)
	}
	return app
}

func slotNameIP(a Assignment) string { return fmt.Sprintf("%d %s %s %s", a.Slot, a.Name, a.IP, a.MAC) }

func TestIdentifySlotOrder(t *testing.T) {
	r := newIdentifyRig(t)
	r.identify(time.Minute, "a", mac(1))
	r.identify(2*time.Minute, "b", "02-52-46-00-00-02") // any form net.ParseMAC takes
	r.identify(3*time.Minute, "c", "02:52:46:00:00:0C")
	r.status(4*time.Minute, "before finish")
	r.signal(5*time.Minute, SignalIdentifyFinish, nil)
	res := r.run(IdentifyInput{Scope: "r01", FirstSlot: 3, Plan: planOf(4)})

	for label, want := range map[string]string{
		"a": "3 r01n01 10.1.0.1 02:52:46:00:00:01",
		"b": "4 r01n02 10.1.0.2 02:52:46:00:00:02",
		"c": "5 r01n03 10.1.0.3 02:52:46:00:00:0c",
	} {
		if got := slotNameIP(r.assigned(label)); got != want {
			t.Errorf("%s: got %s, want %s", label, got, want)
		}
	}
	if a := r.assigned("b"); a.From != "10.9.0.7" || a.At.IsZero() {
		t.Errorf("b: From %q At %v", a.From, a.At)
	}
	s := r.statuses["before finish"]
	if s.Next == nil || s.Next.Slot != 6 || s.Remaining != 1 || s.Total != 4 || len(s.Assignments) != 3 || s.Closing {
		t.Errorf("status before finish: %+v", s)
	}
	if res.Ended != "finished" || len(res.Assignments) != 3 || len(res.Unassigned) != 1 || res.Unassigned[0].Slot != 6 {
		t.Errorf("result: %+v", res)
	}
}

func TestIdentifySkipAndUndo(t *testing.T) {
	r := newIdentifyRig(t)
	r.identify(1*time.Minute, "a", mac(1))                            // slot 1
	r.signal(2*time.Minute, SignalIdentifySkip, SkipRequest{})        // slot 2 dead
	r.signal(3*time.Minute, SignalIdentifySkip, SkipRequest{Slot: 2}) // a repeat: 3 is next, ignored
	r.identify(4*time.Minute, "b", mac(2))                            // slot 3
	r.status(5*time.Minute, "after b")
	r.signal(6*time.Minute, SignalIdentifyUndo, UndoRequest{Slot: 1}) // not the last action: ignored
	r.signal(7*time.Minute, SignalIdentifyUndo, UndoRequest{Slot: 3}) // b was the wrong machine
	r.status(8*time.Minute, "after undo")
	r.identify(9*time.Minute, "c", mac(3))                      // slot 3 again
	r.identify(10*time.Minute, "b again", mac(2))               // b is free again: slot 4
	r.signal(11*time.Minute, SignalIdentifyUndo, UndoRequest{}) // b off slot 4
	r.signal(12*time.Minute, SignalIdentifyUndo, UndoRequest{}) // c off slot 3
	r.signal(13*time.Minute, SignalIdentifyUndo, UndoRequest{}) // the skip of slot 2
	r.status(14*time.Minute, "after three undos")
	r.identify(15*time.Minute, "d", mac(4)) // slot 2
	r.signal(16*time.Minute, SignalIdentifyFinish, nil)
	res := r.run(IdentifyInput{Scope: "r01", Plan: planOf(5)})

	if got := r.assigned("a").Slot; got != 1 {
		t.Errorf("a: slot %d, want 1", got)
	}
	if got := r.assigned("b").Slot; got != 3 {
		t.Errorf("b: slot %d, want 3 (2 skipped)", got)
	}
	s := r.statuses["after b"]
	if s.Next == nil || s.Next.Slot != 4 || len(s.Skipped) != 1 || s.Skipped[0] != 2 || s.Undoable != 3 ||
		s.LastAction == nil || *s.LastAction != (IdentifyAction{Kind: "assign", Slot: 3, MAC: mac(2)}) {
		t.Errorf("status after b: %+v", s)
	}
	s = r.statuses["after undo"]
	if s.Next == nil || s.Next.Slot != 3 || len(s.Assignments) != 1 || s.Remaining != 3 {
		t.Errorf("status after undo: %+v", s)
	}
	if got := r.assigned("c").Slot; got != 3 {
		t.Errorf("c: slot %d, want 3 (freed by undo)", got)
	}
	if got := r.assigned("b again").Slot; got != 4 {
		t.Errorf("b again: slot %d, want 4", got)
	}
	s = r.statuses["after three undos"]
	if s.Next == nil || s.Next.Slot != 2 || len(s.Skipped) != 0 || len(s.Assignments) != 1 || s.Undoable != 1 {
		t.Errorf("status after three undos: %+v", s)
	}
	if got := r.assigned("d").Slot; got != 2 {
		t.Errorf("d: slot %d, want 2 (skip undone)", got)
	}
	var got []string
	for _, a := range res.Assignments {
		got = append(got, slotNameIP(a))
	}
	want := []string{"1 r01n01 10.1.0.1 " + mac(1), "2 r01n02 10.1.0.2 " + mac(4)}
	if strings.Join(got, ",") != strings.Join(want, ",") || len(res.Skipped) != 0 || len(res.Unassigned) != 3 {
		t.Errorf("result %+v, want assignments %v", res, want)
	}
}

func TestIdentifySameMACGetsSameAnswer(t *testing.T) {
	r := newIdentifyRig(t)
	r.identify(time.Minute, "first", mac(1))
	r.identify(2*time.Minute, "retry", "02:52:46:00:00:01")
	r.identify(3*time.Minute, "retry upper-case", "02:52:46:00:00:01")
	r.identify(4*time.Minute, "other", mac(2))
	r.env.RegisterDelayedCallback(func() { // two updates of one MAC in one workflow task
		r.send("twin 1", mac(3))
		r.send("twin 2", mac(3))
	}, 5*time.Minute)
	r.status(6*time.Minute, "end")
	r.signal(7*time.Minute, SignalIdentifyFinish, nil)
	res := r.run(IdentifyInput{Scope: "r01", Plan: planOf(5)})

	first := r.assigned("first")
	for _, label := range []string{"retry", "retry upper-case"} {
		app := r.rejectedAs(label, ErrMACAssigned)
		var a Assignment
		if err := app.Details(&a); err != nil {
			t.Fatalf("%s: details: %v", label, err)
		}
		if a != first {
			t.Errorf("%s: details %+v, want the first answer %+v", label, a, first)
		}
	}
	if got := r.assigned("other").Slot; got != 2 {
		t.Errorf("other: slot %d, want 2", got)
	}
	// The second twin is either refused as assigned, or accepted and
	// answered with the first twin's position: never a second position.
	t1 := r.assigned("twin 1")
	if t1.Slot != 3 {
		t.Errorf("twin 1: slot %d, want 3", t1.Slot)
	}
	if o := r.outcomes["twin 2"]; o.rejected == nil {
		if got := r.assigned("twin 2"); got != t1 {
			t.Errorf("twin 2: %+v, want %+v", got, t1)
		}
	} else {
		r.rejectedAs("twin 2", ErrMACAssigned)
	}
	if s := r.statuses["end"]; len(s.Assignments) != 3 || s.Next.Slot != 4 {
		t.Errorf("status: %+v", s)
	}
	if len(res.Assignments) != 3 {
		t.Errorf("result: %+v", res)
	}
}

func TestIdentifyRejectsMalformedMAC(t *testing.T) {
	r := newIdentifyRig(t)
	bad := []string{"", "zz", "02:52:46:00:00", "02:00:5e:10:00:00:00:01", "02:52:46:00:00:01; rm -rf /"}
	for i, m := range bad {
		r.identify(time.Duration(i+1)*time.Minute, "bad "+m, m)
	}
	r.identify(10*time.Minute, "good", mac(1))
	r.signal(11*time.Minute, SignalIdentifyFinish, nil)
	res := r.run(IdentifyInput{Scope: "r01", Plan: planOf(2)})
	for _, m := range bad {
		r.rejectedAs("bad "+m, ErrInvalidMAC)
	}
	if got := r.assigned("good").Slot; got != 1 {
		t.Errorf("good: slot %d, want 1: rejected updates must not take a position", got)
	}
	if len(res.Assignments) != 1 {
		t.Errorf("result: %+v", res)
	}
}

func TestIdentifyExhaustedPlan(t *testing.T) {
	r := newIdentifyRig(t)
	r.identify(1*time.Minute, "a", mac(1))
	r.identify(2*time.Minute, "b", mac(2)) // the plan is full from here
	r.identify(3*time.Minute, "c", mac(3))
	r.signal(4*time.Minute, SignalIdentifySkip, SkipRequest{}) // nothing to skip
	r.identify(5*time.Minute, "b retry", mac(2))               // its answer got lost: same answer
	r.status(6*time.Minute, "full")
	r.signal(7*time.Minute, SignalIdentifyUndo, UndoRequest{Slot: 2}) // b was the wrong one
	r.identify(8*time.Minute, "c again", mac(3))
	// No finish signal: the workflow ends DefaultIdentifyGrace after the
	// plan filled up again (at 8 min).
	r.identify(8*time.Minute+DefaultIdentifyGrace-time.Second, "c retry in grace", mac(3))
	res := r.run(IdentifyInput{Scope: "subnet-a", Plan: planOf(2)})

	r.rejectedAs("c", ErrPlanExhausted)
	if app := r.rejectedAs("b retry", ErrMACAssigned); app == nil {
		t.Fatal("b retry")
	}
	if s := r.statuses["full"]; s.Next != nil || s.Remaining != 0 || len(s.Assignments) != 2 {
		t.Errorf("status when full: %+v", s)
	}
	if got := r.assigned("c again").Slot; got != 2 {
		t.Errorf("c again: slot %d, want 2", got)
	}
	r.rejectedAs("c retry in grace", ErrMACAssigned)
	if res.Ended != "plan complete" || len(res.Assignments) != 2 || res.Assignments[1].MAC != mac(3) || len(res.Unassigned) != 0 {
		t.Errorf("result: %+v", res)
	}
	if end := r.env.Now().Sub(r.assigned("c again").At); end != DefaultIdentifyGrace {
		t.Errorf("ended %s after the plan filled up, want %s", end, DefaultIdentifyGrace)
	}
}

func TestIdentifyRefusesAfterFinish(t *testing.T) {
	r := newIdentifyRig(t)
	r.env.RegisterDelayedCallback(func() {
		r.env.SignalWorkflow(SignalIdentifyFinish, nil)
		r.send("late", mac(1))
	}, time.Minute)
	res := r.run(IdentifyInput{Scope: "r01", Plan: planOf(2)})
	if o := r.outcomes["late"]; o.accepted && o.err == nil && len(res.Assignments) != 1 {
		t.Errorf("late update accepted (%+v) but not in the result %+v", o, res)
	}
	if res.Ended != "finished" {
		t.Errorf("result: %+v", res)
	}
}

func TestIdentifyContinuesAsNew(t *testing.T) {
	old := identifyUpdatesPerRun
	identifyUpdatesPerRun = 2
	defer func() { identifyUpdatesPerRun = old }()

	r := newIdentifyRig(t)
	r.identify(1*time.Minute, "a", mac(1))
	r.signal(2*time.Minute, SignalIdentifySkip, SkipRequest{})
	r.identify(3*time.Minute, "b", mac(2))
	r.env.ExecuteWorkflow(Identify, IdentifyInput{Scope: "r01", Plan: planOf(5), Grace: time.Hour})
	var can *workflow.ContinueAsNewError
	if err := r.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new after 2 updates, got %v", err)
	}
	var next IdentifyInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || next.State.Next != 3 || len(next.State.Assignments) != 2 || next.State.Runs != 1 ||
		next.State.Updates != 2 || next.State.Grace != time.Hour || len(next.State.History) != 3 {
		t.Fatalf("carried state: %+v", next.State)
	}

	// The next run goes on where the first stopped.
	r2 := newIdentifyRig(t)
	r2.identify(time.Minute, "a again", mac(1))
	r2.identify(2*time.Minute, "c", mac(3))
	r2.signal(3*time.Minute, SignalIdentifyUndo, UndoRequest{Slot: 4})
	r2.signal(4*time.Minute, SignalIdentifyUndo, UndoRequest{Slot: 3})
	r2.status(5*time.Minute, "after undos")
	r2.env.SetContinueAsNewSuggested(false)
	r2.signal(6*time.Minute, SignalIdentifyFinish, nil)
	res := r2.run(next)
	r2.rejectedAs("a again", ErrMACAssigned)
	if got := r2.assigned("c").Slot; got != 4 {
		t.Errorf("c: slot %d, want 4", got)
	}
	if s := r2.statuses["after undos"]; s.Next == nil || s.Next.Slot != 3 || len(s.Assignments) != 1 {
		t.Errorf("undo across continue-as-new: %+v", s)
	}
	if len(res.Assignments) != 1 || len(res.Skipped) != 1 {
		t.Errorf("result: %+v", res)
	}
}

func TestIdentifyContinuesAsNewWhenSuggested(t *testing.T) {
	r := newIdentifyRig(t)
	r.identify(time.Minute, "a", mac(1))
	r.identify(2*time.Minute, "b", mac(2))
	// The server suggests continue-as-new; the next wake-up (here the
	// callback's own workflow task) moves the state to a new run.
	r.env.RegisterDelayedCallback(func() { r.env.SetContinueAsNewSuggested(true) }, 3*time.Minute)
	r.identify(4*time.Minute, "to the next run", mac(3))
	r.env.ExecuteWorkflow(Identify, IdentifyInput{Scope: "r01", Plan: planOf(5)})
	var can *workflow.ContinueAsNewError
	if err := r.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next IdentifyInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || len(next.State.Assignments) != 2 {
		t.Fatalf("carried state: %+v", next.State)
	}
	if got := r.assigned("b").Slot; got != 2 {
		t.Errorf("b: slot %d, want 2", got)
	}
	if o := r.outcomes["to the next run"]; o != nil && o.accepted {
		t.Errorf("an update after continue-as-new was accepted by the old run: %+v", o)
	}
}

func TestIdentifyInvalidInputFails(t *testing.T) {
	r := newIdentifyRig(t)
	r.env.ExecuteWorkflow(Identify, IdentifyInput{Scope: "R01", Plan: planOf(2)})
	if err := r.env.GetWorkflowError(); !IsApplicationError(err, ErrInvalidPlan) {
		t.Fatalf("want %s, got %v", ErrInvalidPlan, err)
	}
}

func TestValidateIdentifyInput(t *testing.T) {
	in, err := ValidateIdentifyInput(IdentifyInput{Scope: "r01", FirstSlot: 5, Plan: []PlanEntry{
		{Name: "a", IP: "10.0.0.1"}, {Name: "b", IP: "10.0.0.2/24"}, {Slot: 9, Name: "c", IP: "fd00::3"}, {Name: "d", IP: "10.0.0.4"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var slots []int
	for _, e := range in.Plan {
		slots = append(slots, e.Slot)
	}
	if fmt.Sprint(slots) != "[5 6 9 10]" || in.Grace != DefaultIdentifyGrace {
		t.Errorf("slots %v grace %s", slots, in.Grace)
	}

	ok := func() []PlanEntry { return planOf(3) }
	for name, tt := range map[string]struct {
		in   IdentifyInput
		want string
	}{
		"bad scope":          {IdentifyInput{Scope: "R01", Plan: ok()}, "invalid scope"},
		"scope with slash":   {IdentifyInput{Scope: "r01/x", Plan: ok()}, "invalid scope"},
		"empty plan":         {IdentifyInput{Scope: "r01"}, "empty"},
		"negative first":     {IdentifyInput{Scope: "r01", FirstSlot: -1, Plan: ok()}, "negative"},
		"negative grace":     {IdentifyInput{Scope: "r01", Grace: -time.Second, Plan: ok()}, "grace"},
		"first slot differs": {IdentifyInput{Scope: "r01", FirstSlot: 2, Plan: []PlanEntry{{Slot: 3, Name: "a", IP: "10.0.0.1"}}}, "first slot 2"},
		"slots not rising":   {IdentifyInput{Scope: "r01", Plan: []PlanEntry{{Slot: 3, Name: "a", IP: "10.0.0.1"}, {Slot: 3, Name: "b", IP: "10.0.0.2"}}}, "rack order"},
		"bad name":           {IdentifyInput{Scope: "r01", Plan: []PlanEntry{{Name: "A B", IP: "10.0.0.1"}}}, "invalid name"},
		"missing ip":         {IdentifyInput{Scope: "r01", Plan: []PlanEntry{{Name: "a"}}}, "missing address"},
		"bad ip":             {IdentifyInput{Scope: "r01", Plan: []PlanEntry{{Name: "a", IP: "10.0.0.300"}}}, "invalid address"},
		"unspecified ip":     {IdentifyInput{Scope: "r01", Plan: []PlanEntry{{Name: "a", IP: "0.0.0.0"}}}, "invalid address"},
		"duplicate name":     {IdentifyInput{Scope: "r01", Plan: []PlanEntry{{Name: "a", IP: "10.0.0.1"}, {Name: "a", IP: "10.0.0.2"}}}, "name a is also slot 1"},
		"duplicate ip":       {IdentifyInput{Scope: "r01", Plan: []PlanEntry{{Name: "a", IP: "10.0.0.1/24"}, {Name: "b", IP: "10.0.0.1"}}}, "address 10.0.0.1 is also slot 1"},
		"too long":           {IdentifyInput{Scope: "r01", Plan: make([]PlanEntry, MaxIdentifyPlan+1)}, "max"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ValidateIdentifyInput(tt.in)
			if !IsApplicationError(err, ErrInvalidPlan) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %s containing %q", err, ErrInvalidPlan, tt.want)
			}
		})
	}
}

func TestIdentifyDetails(t *testing.T) {
	r := newIdentifyRig(t)
	r.identify(time.Minute, "a", mac(1))
	r.signal(2*time.Minute, SignalIdentifySkip, SkipRequest{})
	var details string
	r.env.RegisterDelayedCallback(func() {
		v, err := r.env.QueryWorkflow("__temporal_workflow_metadata")
		if err != nil {
			t.Errorf("metadata query: %v", err)
			return
		}
		var md sdkpb.WorkflowMetadata
		if err := v.Get(&md); err != nil {
			t.Errorf("metadata: %v", err)
		}
		details = md.GetCurrentDetails()
	}, 3*time.Minute)
	r.signal(4*time.Minute, SignalIdentifyFinish, nil)
	r.run(IdentifyInput{Scope: "r01", Plan: planOf(4)})
	for _, want := range []string{
		"**identify r01** — 2/4 positions done (1 assigned, 1 skipped) — next: slot 3 → r01n03 (10.1.0.3)",
		"| 1 | r01n01 | 10.1.0.1 | ✅ assigned | `" + mac(1) + "` |",
		"| 2 | r01n02 | 10.1.0.2 | ⏭ skipped |",
		"| 3 | r01n03 | 10.1.0.3 | ▶ **next** |",
		"| 4 | r01n04 | 10.1.0.4 | waiting |",
	} {
		if !strings.Contains(details, want) {
			t.Errorf("details lack %q:\n%s", want, details)
		}
	}
}

func TestIdentifyDetailsWindow(t *testing.T) {
	w := &identify{st: IdentifyState{Scope: "big", Plan: planOf(200), Next: 100}}
	d := w.details()
	rows := strings.Count(d, "\n| ")
	if !strings.Contains(d, "| … | 70 earlier positions |") || !strings.Contains(d, "| … | 70 later positions |") || rows != identifyTableRows+3 {
		t.Errorf("window of a 200-position plan (%d rows):\n%s", rows, d)
	}
}

// confirm sends the confirm update for m at offset at, from the address
// the node took, recorded as label.
func (r *identifyRig) confirm(at time.Duration, label, m, from string) {
	r.env.RegisterDelayedCallback(func() {
		o := &updateOutcome{}
		r.outcomes[label] = o
		r.env.UpdateWorkflow(UpdateIdentifyConfirm, label, &testsuite.TestUpdateCallback{
			OnAccept: func() { o.accepted = true },
			OnReject: func(err error) { o.rejected = err; o.done = true },
			OnComplete: func(v any, err error) {
				o.done, o.err = true, err
				if a, ok := v.(Assignment); ok {
					o.result = a
				}
			},
		}, IdentifyRequest{MAC: m, From: from})
	}, at)
}

func TestIdentifyConfirm(t *testing.T) {
	r := newIdentifyRig(t)
	r.identify(1*time.Minute, "a", mac(1))
	r.confirm(2*time.Minute, "a confirms", mac(1), "10.1.0.1")
	r.confirm(3*time.Minute, "a confirms again", mac(1), "10.9.9.9")
	r.confirm(4*time.Minute, "stranger", mac(7), "10.1.0.7")
	r.confirm(5*time.Minute, "bad mac", "not-a-mac", "10.1.0.7")
	r.identify(6*time.Minute, "b", mac(2))
	r.signal(7*time.Minute, SignalIdentifyUndo, UndoRequest{}) // b was the wrong machine
	r.confirm(8*time.Minute, "b after undo", mac(2), "10.1.0.2")
	r.status(9*time.Minute, "end")
	r.signal(10*time.Minute, SignalIdentifyFinish, nil)
	res := r.run(IdentifyInput{Scope: "r01", Plan: planOf(3)})

	first := r.assigned("a confirms")
	if first.Slot != 1 || first.Confirmed.IsZero() || first.ConfirmedFrom != "10.1.0.1" {
		t.Fatalf("confirmation = %+v, want slot 1 confirmed from 10.1.0.1", first)
	}
	if again := r.assigned("a confirms again"); !again.Confirmed.Equal(first.Confirmed) || again.ConfirmedFrom != "10.1.0.1" {
		t.Errorf("a second confirmation changed the first: %+v", again)
	}
	r.rejectedAs("stranger", ErrNotAssigned)
	r.rejectedAs("bad mac", ErrInvalidMAC)
	r.rejectedAs("b after undo", ErrNotAssigned)
	if st := r.statuses["end"]; st.Confirmed != 1 || len(st.Assignments) != 1 {
		t.Errorf("status = %+v, want one assignment, confirmed", st)
	}
	if len(res.Assignments) != 1 || res.Assignments[0].ConfirmedFrom != "10.1.0.1" {
		t.Errorf("result = %+v", res)
	}
}
