package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

const drainURL = "http://inventory.example/drain"

func (r *rig) reinstall(in ReinstallInput) (ReinstallResult, error) {
	r.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: NodeWorkflowID(in.Node)})
	r.env.ExecuteWorkflow(Reinstall, in)
	if !r.env.IsWorkflowCompleted() {
		r.t.Fatal("workflow did not complete")
	}
	var res ReinstallResult
	err := r.env.GetWorkflowResult(&res)
	return res, err
}

// checksIn makes every boot check in after 30 s.
func checksIn(r *rig, _ int) {
	r.checkInAfter(30*time.Second, CheckIn{Node: "r01n01", Status: "ok", Digest: digest})
}

func TestReinstallWithoutDrain(t *testing.T) {
	r := newNodeRig(t)
	r.onBoot = checksIn
	res, err := r.reinstall(ReinstallInput{Node: "r01n01", Image: "demo", Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, r.calls, "lookup", "destroy", "clone", "export", "boot:install", "power", "boot:local")
	if res.Drained || res.Node != "r01n01" || res.Version != "v2" || res.Digest != digest || res.BootAttempts != 1 {
		t.Errorf("result = %+v", res)
	}
	if got := r.phases; len(got) < 3 || got[0] != PhaseStarting || got[1] != PhaseDestroying || got[len(got)-1] != PhaseProvisioned {
		t.Errorf("phases = %v", got)
	}
	if r.attrs[AttrImage.GetName()] != "demo" || r.attrs[AttrRack.GetName()] != "r01" {
		t.Errorf("attributes = %v", r.attrs)
	}
}

func TestReinstallDrainSignalled(t *testing.T) {
	r := newNodeRig(t)
	r.onBoot = checksIn
	var req DrainRequest
	r.env.OnActivity(ActivityRequestDrain, mock.Anything, mock.Anything).Return(func(_ context.Context, in DrainRequest) error {
		r.calls = append(r.calls, "drain")
		req = in
		return nil
	})
	r.env.RegisterDelayedCallback(func() {
		if p := r.progress(); p.Phase != PhaseDraining {
			t.Errorf("before the drained signal: phase %s", p.Phase)
		}
		if len(r.calls) != 2 {
			t.Errorf("before the drained signal: %v ran", r.calls)
		}
		r.env.SignalWorkflow(SignalDrained, nil)
	}, 20*time.Minute)
	res, err := r.reinstall(ReinstallInput{Node: "r01n01", Image: "demo", Version: "v2", DrainURL: drainURL, DrainTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, r.calls, "lookup", "drain", "destroy", "clone", "export", "boot:install", "power", "boot:local")
	if !res.Drained {
		t.Error("result does not say drained")
	}
	if req.URL != drainURL || req.Node != "r01n01" || req.WorkflowID != "node/r01n01" || req.RunID == "" || req.Signal != SignalDrained {
		t.Errorf("drain request = %+v", req)
	}
}

// TestReinstallDrainsThroughTheRacksWebhook: with no DrainURL in the
// input, the rack's webhook from the inventory (NodeInfo.DrainURL) is asked.
func TestReinstallDrainsThroughTheRacksWebhook(t *testing.T) {
	r := newNodeRig(t)
	r.onBoot = checksIn
	r.drainURL = drainURL
	var req DrainRequest
	r.env.OnActivity(ActivityRequestDrain, mock.Anything, mock.Anything).Return(func(_ context.Context, in DrainRequest) error {
		req = in
		return nil
	})
	r.env.RegisterDelayedCallback(func() { r.env.SignalWorkflow(SignalDrained, nil) }, time.Minute)
	res, err := r.reinstall(ReinstallInput{Node: "r01n01", Image: "demo", Version: "v2", DrainTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Drained || req.URL != drainURL || req.Node != "r01n01" {
		t.Errorf("result %+v, drain request %+v", res, req)
	}
}

func TestReinstallDrainFailuresTouchNothing(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(r *rig)
		errType string
	}{
		{"no drained signal before the timeout", func(*rig) {}, ErrDrainTimeout},
		{"webhook refuses", func(r *rig) {
			r.env.OnActivity(ActivityRequestDrain, mock.Anything, mock.Anything).Return(func(context.Context, DrainRequest) error {
				r.calls = append(r.calls, "drain")
				return temporal.NewNonRetryableApplicationError("404 Not Found", ErrDrainRejected, nil)
			})
		}, ErrDrainRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newNodeRig(t)
			tt.setup(r)
			start := r.env.Now()
			_, err := r.reinstall(ReinstallInput{Node: "r01n01", Image: "demo", Version: "v2", DrainURL: drainURL, DrainTimeout: 10 * time.Minute})
			wantErrType(t, err, tt.errType)
			wantCalls(t, r.calls, "lookup", "drain")
			if p := r.progress(); p.Phase != PhaseFailed || p.Error == "" {
				t.Errorf("progress = %+v", p)
			}
			if tt.errType == ErrDrainTimeout {
				if waited := r.env.Now().Sub(start); waited < 10*time.Minute {
					t.Errorf("gave up after %s, want the 10 min drain timeout", waited)
				}
			}
		})
	}
}

func TestReinstallProvisionFailureIsUndone(t *testing.T) {
	r := newNodeRig(t)
	_, err := r.reinstall(ReinstallInput{Node: "r01n01", Image: "demo", Version: "v2", CheckInTimeout: time.Minute, BootAttempts: 1})
	wantErrType(t, err, ErrCheckInTimeout)
	wantCalls(t, r.calls, "lookup", "destroy", "clone", "export", "boot:install", "power",
		"power:disk", "boot:local", "unexport", "destroy")
	if p := r.progress(); p.Phase != PhaseFailed || p.BootAttempt != 1 {
		t.Errorf("progress = %+v", p)
	}
}
