package workflows

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// rackSteps registers the rack activities of Identify, recording their
// calls; RecordIdentified refuses the MACs in refuse.
func (r *identifyRig) rackSteps(calls *[]string, refuse map[string]string) {
	r.env.RegisterActivityWithOptions(func(_ context.Context, in DiscoveryBootInput) error {
		if in.Remove {
			*calls = append(*calls, "remove "+in.Rack)
		} else {
			*calls = append(*calls, "profile "+in.Rack+" "+in.Scope)
		}
		return nil
	}, activity.RegisterOptions{Name: ActivitySetDiscoveryBoot})
	r.env.RegisterActivityWithOptions(func(_ context.Context, in RecordIdentifiedInput) (RecordIdentifiedResult, error) {
		if msg, ok := refuse[in.Assignment.MAC]; ok {
			*calls = append(*calls, "refused "+in.Assignment.Name)
			return RecordIdentifiedResult{}, temporal.NewNonRetryableApplicationError(msg, ErrInventoryConflict, nil)
		}
		*calls = append(*calls, "record "+in.Rack+" "+in.Assignment.Name+" "+in.Assignment.MAC)
		return RecordIdentifiedResult{Node: in.Assignment.Name, Changed: true, NoBMC: true}, nil
	}, activity.RegisterOptions{Name: ActivityRecordIdentified})
}

func TestIdentifyRackSteps(t *testing.T) {
	r := newIdentifyRig(t)
	var calls []string
	r.rackSteps(&calls, map[string]string{mac(2): "MAC " + mac(2) + " is node r01n09's"})
	r.identify(1*time.Minute, "a", mac(1))
	r.confirm(2*time.Minute, "a confirms", mac(1), "10.1.0.1")
	r.confirm(3*time.Minute, "a confirms again", mac(1), "10.1.0.1")
	r.identify(4*time.Minute, "b", mac(2))
	r.confirm(5*time.Minute, "b confirms", mac(2), "10.1.0.2")
	r.status(6*time.Minute, "end")
	r.signal(7*time.Minute, SignalIdentifyFinish, nil)
	res := r.run(IdentifyInput{Scope: "r01", Rack: "r01", Plan: planOf(3)})

	want := []string{"profile r01 r01", "record r01 r01n01 " + mac(1), "refused r01n02", "remove r01"}
	if !slices.Equal(calls, want) {
		t.Fatalf("rack activities:\n%s\nwant\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	if a := r.assigned("a confirms"); !a.Recorded || a.RecordError != "" {
		t.Errorf("a: %+v, want recorded", a)
	}
	if a := r.assigned("a confirms again"); !a.Recorded {
		t.Errorf("a again: %+v, want recorded (and no second record)", a)
	}
	b := r.assigned("b confirms")
	if b.Recorded || !strings.Contains(b.RecordError, "is node r01n09's") || b.Confirmed.IsZero() {
		t.Errorf("b: %+v, want confirmed, not recorded, with the reason", b)
	}
	if len(res.Assignments) != 2 || !res.Assignments[0].Recorded || res.Assignments[1].RecordError == "" {
		t.Errorf("result = %+v", res)
	}
}

func TestIdentifyWithoutRackRunsNoRackSteps(t *testing.T) {
	r := newIdentifyRig(t)
	var calls []string
	r.rackSteps(&calls, nil)
	r.identify(1*time.Minute, "a", mac(1))
	r.confirm(2*time.Minute, "a confirms", mac(1), "10.1.0.1")
	r.signal(3*time.Minute, SignalIdentifyFinish, nil)
	r.run(IdentifyInput{Scope: "s1", Plan: planOf(2)})
	if len(calls) != 0 {
		t.Fatalf("rack activities without a rack: %v", calls)
	}
	if a := r.assigned("a confirms"); a.Recorded || a.RecordError != "" {
		t.Errorf("a: %+v", a)
	}
}

func TestIdentifyRackStepsCancelled(t *testing.T) {
	r := newIdentifyRig(t)
	var calls []string
	r.rackSteps(&calls, nil)
	r.env.RegisterDelayedCallback(r.env.CancelWorkflow, time.Minute)
	r.env.ExecuteWorkflow(Identify, IdentifyInput{Scope: "r01", Rack: "r01", Plan: planOf(2)})
	if !slices.Equal(calls, []string{"profile r01 r01", "remove r01"}) {
		t.Fatalf("rack activities of a cancelled identification: %v", calls)
	}
}

func TestIdentifyRackInvalid(t *testing.T) {
	if _, err := ValidateIdentifyInput(IdentifyInput{Scope: "r01", Rack: "R 01", Plan: planOf(1)}); err == nil || !strings.Contains(err.Error(), "invalid rack") {
		t.Fatalf("bad rack: %v", err)
	}
}

// TestIdentifyRackStepsAcrossContinueAsNew: the discovery profile stays
// while the identification continues as new, and the rack travels on.
func TestIdentifyRackStepsAcrossContinueAsNew(t *testing.T) {
	old := identifyUpdatesPerRun
	identifyUpdatesPerRun = 1
	defer func() { identifyUpdatesPerRun = old }()

	r := newIdentifyRig(t)
	var calls []string
	r.rackSteps(&calls, nil)
	r.identify(1*time.Minute, "a", mac(1))
	r.env.ExecuteWorkflow(Identify, IdentifyInput{Scope: "s1", Rack: "r01", Plan: planOf(3)})
	var can *workflow.ContinueAsNewError
	if err := r.env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next IdentifyInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.Rack != "r01" || next.State == nil || next.State.Rack != "r01" {
		t.Fatalf("the rack did not travel: %+v", next)
	}
	if !slices.Equal(calls, []string{"profile r01 s1"}) {
		t.Fatalf("first run's rack activities: %v (want the profile kept)", calls)
	}
}
