package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
)

func TestIdentifyBoot(t *testing.T) {
	r := newRig(t)
	r.env.RegisterWorkflow(IdentifyBoot)
	var boots []SetBootInput
	r.env.OnActivity(ActivitySetBoot, mock.Anything, mock.Anything).Return(func(_ context.Context, in SetBootInput) error {
		r.calls = append(r.calls, "boot:"+string(in.Mode))
		boots = append(boots, in)
		return nil
	})
	r.env.ExecuteWorkflow(IdentifyBoot, IdentifyBootInput{Node: "r01n01", Scope: "r01"})
	var res IdentifyBootResult
	if err := r.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, r.calls, "lookup", "boot:identify", "power")
	if len(boots) != 1 || boots[0] != (SetBootInput{Node: "r01n01", Mode: BootIdentify, Scope: "r01"}) {
		t.Errorf("SetBoot inputs = %+v", boots)
	}
	if res != (IdentifyBootResult{Node: "r01n01", Rack: "r01", Scope: "r01"}) {
		t.Errorf("result = %+v", res)
	}
	if p := r.progress(); p.Phase != PhaseIdentifying {
		t.Errorf("progress = %+v, want phase %s", p, PhaseIdentifying)
	}
}

func TestIdentifyBootRefusesABadScope(t *testing.T) {
	for _, scope := range []string{"", "R01", "r 1", "../x"} {
		r := newRig(t)
		r.env.RegisterWorkflow(IdentifyBoot)
		r.env.ExecuteWorkflow(IdentifyBoot, IdentifyBootInput{Node: "r01n01", Scope: scope})
		if err := r.env.GetWorkflowError(); errorType(err) != ErrInvalidName {
			t.Errorf("scope %q: err = %v, want %s", scope, err, ErrInvalidName)
		}
		wantCalls(t, r.calls)
	}
}
