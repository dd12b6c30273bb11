package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// newNodeRig is newRig with Release and Reinstall registered and stand-ins
// for the activities only they call.
func newNodeRig(t *testing.T) *rig {
	r := newRig(t)
	r.env.RegisterWorkflow(Release)
	r.env.RegisterWorkflow(Reinstall)
	r.env.RegisterActivityWithOptions(func(_ context.Context, node string) error {
		r.calls = append(r.calls, "power:off")
		return nil
	}, activity.RegisterOptions{Name: ActivityPowerOff})
	r.env.RegisterActivityWithOptions(func(_ context.Context, req DrainRequest) error {
		r.calls = append(r.calls, "drain")
		return nil
	}, activity.RegisterOptions{Name: ActivityRequestDrain})
	return r
}

func (r *rig) release(in ReleaseInput) (ReleaseResult, error) {
	r.env.ExecuteWorkflow(Release, in)
	if !r.env.IsWorkflowCompleted() {
		r.t.Fatal("workflow did not complete")
	}
	var res ReleaseResult
	err := r.env.GetWorkflowResult(&res)
	return res, err
}

func TestReleasePolicies(t *testing.T) {
	tests := []struct {
		policy, want string
		calls        []string
		phases       []Phase
	}{
		{"", ReleasePowerOff, []string{"lookup", "power:off", "boot:local", "unexport", "destroy"},
			[]Phase{PhaseStarting, PhasePoweringOff, PhaseSettingBoot, PhaseUnexporting, PhaseDestroying, PhaseReleased}},
		{ReleasePowerOff, ReleasePowerOff, []string{"lookup", "power:off", "boot:local", "unexport", "destroy"},
			[]Phase{PhaseStarting, PhasePoweringOff, PhaseSettingBoot, PhaseUnexporting, PhaseDestroying, PhaseReleased}},
		{ReleaseReference, ReleaseReference, []string{"lookup", "power:disk", "boot:local", "unexport", "destroy"},
			[]Phase{PhaseStarting, PhasePowerCycle, PhaseSettingBoot, PhaseUnexporting, PhaseDestroying, PhaseReleased}},
	}
	for _, tt := range tests {
		t.Run("policy "+tt.policy, func(t *testing.T) {
			r := newNodeRig(t)
			var cycles []PowerCycleInput
			r.env.OnActivity(ActivityPowerCycle, mock.Anything, mock.Anything).Return(func(_ context.Context, in PowerCycleInput) error {
				r.calls = append(r.calls, "power:disk")
				cycles = append(cycles, in)
				return nil
			}).Maybe()
			res, err := r.release(ReleaseInput{Node: "r01n01", Policy: tt.policy})
			if err != nil {
				t.Fatal(err)
			}
			wantCalls(t, r.calls, tt.calls...)
			if res != (ReleaseResult{Node: "r01n01", Rack: "r01", Policy: tt.want}) {
				t.Errorf("result = %+v", res)
			}
			if tt.want == ReleaseReference && (len(cycles) != 1 || cycles[0] != (PowerCycleInput{Node: "r01n01", Hard: true, Disk: true})) {
				t.Errorf("power cycles = %+v, want one hard cycle into the local disk", cycles)
			}
			if len(r.phases) != len(tt.phases) {
				t.Fatalf("phases = %v, want %v", r.phases, tt.phases)
			}
			for i := range tt.phases {
				if r.phases[i] != tt.phases[i] {
					t.Fatalf("phases = %v, want %v", r.phases, tt.phases)
				}
			}
			for key, want := range map[temporal.SearchAttributeKeyKeyword]string{AttrNode: "r01n01", AttrRack: "r01", AttrPhase: "released"} {
				if got := r.attrs[key.GetName()]; got != want {
					t.Errorf("%s = %q, want %q", key.GetName(), got, want)
				}
			}
			if p := r.progress(); p.Phase != PhaseReleased || p.Rack != "r01" || p.Error != "" {
				t.Errorf("progress = %+v", p)
			}
		})
	}
}

// machine is a node's state as the idempotent activities see it.
type machine struct {
	on, exported, root bool
	boot               BootMode
}

// onMachine makes r's power, boot, export and root activities act on m the
// way the real ones do: each succeeds when there is nothing to do.
func (r *rig) onMachine(m *machine) {
	r.env.OnActivity(ActivityPowerOff, mock.Anything, mock.Anything).Return(func(context.Context, string) error {
		r.calls = append(r.calls, "power:off")
		m.on = false
		return nil
	})
	r.env.OnActivity(ActivitySetBoot, mock.Anything, mock.Anything).Return(func(_ context.Context, in SetBootInput) error {
		r.calls = append(r.calls, "boot:"+string(in.Mode))
		m.boot = in.Mode
		return nil
	})
	r.env.OnActivity(ActivityUnexport, mock.Anything, mock.Anything).Return(func(context.Context, string) error {
		r.calls = append(r.calls, "unexport")
		m.exported = false
		return nil
	})
	r.env.OnActivity(ActivityDestroyRoot, mock.Anything, mock.Anything).Return(func(context.Context, string) error {
		r.calls = append(r.calls, "destroy")
		m.root = false
		return nil
	})
}

// TestReleaseCompletesPartialStateAndReruns releases a node a failed
// operation left on, with a root and an install profile but no export, then
// releases it again: both runs succeed with the same steps and leave it
// clean.
func TestReleaseCompletesPartialStateAndReruns(t *testing.T) {
	m := &machine{on: true, root: true, boot: BootInstall}
	for run := 1; run <= 2; run++ {
		r := newNodeRig(t)
		r.onMachine(m)
		if _, err := r.release(ReleaseInput{Node: "r01n01"}); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		wantCalls(t, r.calls, "lookup", "power:off", "boot:local", "unexport", "destroy")
		if *m != (machine{boot: BootLocal}) {
			t.Fatalf("run %d left %+v", run, *m)
		}
	}
}

func TestReleaseFailures(t *testing.T) {
	tests := []struct {
		name    string
		in      ReleaseInput
		setup   func(r *rig)
		errType string
		calls   []string
	}{
		{
			name: "unknown node",
			in:   ReleaseInput{Node: "r09n01"},
			setup: func(r *rig) {
				r.lookupErr = temporal.NewNonRetryableApplicationError("unknown node r09n01", ErrUnknownNode, nil)
			},
			errType: ErrUnknownNode,
			calls:   []string{"lookup"},
		},
		{
			name: "bad BMC credentials are not retried and nothing else is touched",
			in:   ReleaseInput{Node: "r01n01"},
			setup: func(r *rig) {
				r.env.OnActivity(ActivityPowerOff, mock.Anything, mock.Anything).Return(func(context.Context, string) error {
					r.calls = append(r.calls, "power:off")
					return temporal.NewApplicationError("BMC of r01n01: 401", ErrBMCAuth)
				})
			},
			errType: ErrBMCAuth,
			calls:   []string{"lookup", "power:off"},
		},
		{
			name:    "bad BMC credentials, reference policy",
			in:      ReleaseInput{Node: "r01n01", Policy: ReleaseReference},
			setup:   func(r *rig) { r.powerErr = temporal.NewApplicationError("BMC of r01n01: 401", ErrBMCAuth) },
			errType: ErrBMCAuth,
			calls:   []string{"lookup", "power:disk"},
		},
		{
			name:    "unknown policy",
			in:      ReleaseInput{Node: "r01n01", Policy: "explode"},
			setup:   func(*rig) {},
			errType: ErrInvalidPolicy,
			calls:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newNodeRig(t)
			tt.setup(r)
			_, err := r.release(tt.in)
			wantErrType(t, err, tt.errType)
			wantCalls(t, r.calls, tt.calls...)
			if p := r.progress(); p.Phase != PhaseFailed || p.Error == "" {
				t.Errorf("progress = %+v", p)
			}
			if got := r.attrs[AttrPhase.GetName()]; got != string(PhaseFailed) {
				t.Errorf("phase attribute = %q", got)
			}
		})
	}
}
