package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

const digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// rig is a Provision run in the SDK test environment with every activity
// replaced by a recording stand-in; the stand-ins' behaviour is per test.
type rig struct {
	t      *testing.T
	env    *testsuite.TestWorkflowEnvironment
	calls  []string
	run    string // run ID the install boot profile carried
	boots  []PowerCycleInput
	attrs  map[string]string // last value of each keyword search attribute
	phases []Phase           // every RackflowPhase upserted, in order
	// behaviour
	lookupErr, cloneErr, powerErr error
	drainURL                      string                    // the rack's drain webhook LookupNode reports
	onBoot                        func(r *rig, attempt int) // e.g. schedule a check-in
}

func newRig(t *testing.T) *rig {
	var s testsuite.WorkflowTestSuite
	r := &rig{t: t, env: s.NewTestWorkflowEnvironment()}
	r.env.RegisterWorkflow(Provision)
	r.attrs = map[string]string{}
	r.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		for _, key := range []temporal.SearchAttributeKeyKeyword{AttrNode, AttrRack, AttrImage, AttrPhase, AttrOwner} {
			if v, ok := sa.GetKeyword(key); ok {
				r.attrs[key.GetName()] = v
				if key == AttrPhase {
					r.phases = append(r.phases, Phase(v))
				}
			}
		}
	}).Return(nil)
	reg := func(name string, fn any) {
		r.env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	reg(ActivityLookupNode, func(_ context.Context, node string) (NodeInfo, error) {
		r.calls = append(r.calls, "lookup")
		if r.lookupErr != nil {
			return NodeInfo{}, r.lookupErr
		}
		return NodeInfo{Name: node, Rack: "r01", Slot: 1, MACs: []string{"02:52:46:01:00:01"}, IP: "127.101.0.1", DrainURL: r.drainURL}, nil
	})
	reg(ActivityClone, func(_ context.Context, in CloneInput) (Root, error) {
		r.calls = append(r.calls, "clone")
		if r.cloneErr != nil {
			return Root{}, r.cloneErr
		}
		return Root{Node: in.Node, Image: in.Image, Version: in.Version, Digest: digest, Size: 1 << 20}, nil
	})
	reg(ActivityExport, func(_ context.Context, node string) (ExportResult, error) {
		r.calls = append(r.calls, "export")
		return ExportResult{URL: "http://127.0.0.1:8880/exports/" + node + "/image.raw", Digest: digest}, nil
	})
	reg(ActivitySetBoot, func(_ context.Context, in SetBootInput) error {
		r.calls = append(r.calls, "boot:"+string(in.Mode))
		if in.Mode == BootInstall {
			r.run = in.Run
		}
		return nil
	})
	reg(ActivityPowerCycle, func(_ context.Context, in PowerCycleInput) error {
		switch {
		case in.Disk:
			r.calls = append(r.calls, "power:disk")
		case in.Hard:
			r.calls = append(r.calls, "power:hard")
		default:
			r.calls = append(r.calls, "power")
		}
		if r.powerErr != nil {
			return r.powerErr
		}
		if !in.Disk {
			r.boots = append(r.boots, in)
			if r.onBoot != nil {
				r.onBoot(r, len(r.boots))
			}
		}
		return nil
	})
	reg(ActivityUnexport, func(_ context.Context, node string) error { r.calls = append(r.calls, "unexport"); return nil })
	reg(ActivityDestroyRoot, func(_ context.Context, node string) error { r.calls = append(r.calls, "destroy"); return nil })
	return r
}

// checkInAfter sends a check-in d after the current (test) time.
func (r *rig) checkInAfter(d time.Duration, c CheckIn) {
	r.env.RegisterDelayedCallback(func() {
		if c.Run == "" {
			c.Run = r.run
		}
		r.env.SignalWorkflow(SignalCheckIn, c)
	}, d)
}

func (r *rig) execute() (ProvisionResult, error) {
	r.env.ExecuteWorkflow(Provision, ProvisionInput{Node: "r01n01", Image: "demo", Version: "v2", CheckInTimeout: 5 * time.Minute})
	if !r.env.IsWorkflowCompleted() {
		r.t.Fatal("workflow did not complete")
	}
	var res ProvisionResult
	err := r.env.GetWorkflowResult(&res)
	return res, err
}

func (r *rig) progress() Progress {
	v, err := r.env.QueryWorkflow(QueryProgress)
	if err != nil {
		r.t.Fatal(err)
	}
	var p Progress
	if err := v.Get(&p); err != nil {
		r.t.Fatal(err)
	}
	return p
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("activities ran %v\nwant            %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("activities ran %v\nwant            %v", got, want)
		}
	}
}

func wantErrType(t *testing.T, err error, typ string) {
	t.Helper()
	if err == nil || !IsApplicationError(err, typ) {
		t.Fatalf("error = %v, want ApplicationError %s", err, typ)
	}
}

func TestProvisionHappyPath(t *testing.T) {
	r := newRig(t)
	r.onBoot = func(r *rig, _ int) {
		r.checkInAfter(40*time.Second, CheckIn{Node: "r01n01", Status: "ok", Digest: digest})
	}
	res, err := r.execute()
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, r.calls, "lookup", "clone", "export", "boot:install", "power", "boot:local")
	if res.Node != "r01n01" || res.Rack != "r01" || res.Digest != digest || res.BootAttempts != 1 {
		t.Errorf("result = %+v", res)
	}
	if p := r.progress(); p.Phase != PhaseProvisioned {
		t.Errorf("phase = %s", p.Phase)
	}
	for key, want := range map[temporal.SearchAttributeKeyKeyword]string{AttrNode: "r01n01", AttrRack: "r01", AttrImage: "demo", AttrPhase: "provisioned"} {
		if got := r.attrs[key.GetName()]; got != want {
			t.Errorf("%s = %q, want %q", key.GetName(), got, want)
		}
	}
	if got := r.phases; len(got) != 8 || got[0] != PhaseStarting || got[5] != PhaseAwaiting {
		t.Errorf("phases = %v", got)
	}
}

func TestProvisionCheckInTimeoutEscalatesThenUndoes(t *testing.T) {
	r := newRig(t)
	_, err := r.execute()
	wantErrType(t, err, ErrCheckInTimeout)
	wantCalls(t, r.calls, "lookup", "clone", "export", "boot:install", "power", "power:hard",
		"power:disk", "boot:local", "unexport", "destroy")
	if len(r.boots) != 2 || r.boots[0].Hard || !r.boots[1].Hard {
		t.Errorf("boots = %+v, want a power cycle then a hard one", r.boots)
	}
	if p := r.progress(); p.Phase != PhaseFailed || p.Error == "" {
		t.Errorf("progress = %+v", p)
	}
}

func TestProvisionSecondBootChecksIn(t *testing.T) {
	r := newRig(t)
	r.onBoot = func(r *rig, attempt int) {
		if attempt == 2 {
			r.checkInAfter(time.Minute, CheckIn{Node: "r01n01", Status: "ok", Digest: digest})
		}
	}
	res, err := r.execute()
	if err != nil {
		t.Fatal(err)
	}
	if res.BootAttempts != 2 {
		t.Errorf("boot attempts = %d", res.BootAttempts)
	}
}

func TestProvisionRejectsOtherNodesCheckIn(t *testing.T) {
	tests := []struct {
		name string
		bad  CheckIn
	}{
		{"other node", CheckIn{Node: "r01n02", Status: "ok", Digest: digest}},
		{"other run", CheckIn{Node: "r01n01", Run: "stale-run", Status: "ok", Digest: digest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.onBoot = func(r *rig, attempt int) {
				if attempt == 1 {
					r.checkInAfter(10*time.Second, tt.bad)
					r.checkInAfter(20*time.Second, CheckIn{Node: "r01n01", Status: "ok", Digest: digest})
				}
			}
			if _, err := r.execute(); err != nil {
				t.Fatal(err)
			}
			if p := r.progress(); p.RejectedCheckIns != 1 || p.BootAttempt != 1 {
				t.Errorf("progress = %+v, want 1 rejected check-in in boot 1", p)
			}
		})
	}
}

func TestProvisionFailures(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(r *rig)
		errType string
		calls   []string
	}{
		{
			name: "unknown node",
			setup: func(r *rig) {
				r.lookupErr = temporal.NewNonRetryableApplicationError("unknown node r01n01", ErrUnknownNode, nil)
			},
			errType: ErrUnknownNode,
			calls:   []string{"lookup"},
		},
		{
			name: "unknown version is not retried",
			setup: func(r *rig) {
				r.cloneErr = temporal.NewNonRetryableApplicationError("no version v9", ErrUnknownVersion, nil)
			},
			errType: ErrUnknownVersion,
			calls:   []string{"lookup", "clone"},
		},
		{
			name:    "bad BMC credentials are not retried",
			setup:   func(r *rig) { r.powerErr = temporal.NewApplicationError("401", ErrBMCAuth) },
			errType: ErrBMCAuth,
			calls:   []string{"lookup", "clone", "export", "boot:install", "power", "boot:local", "unexport", "destroy"},
		},
		{
			name: "node reports an error",
			setup: func(r *rig) {
				r.onBoot = func(r *rig, _ int) {
					r.checkInAfter(time.Second, CheckIn{Node: "r01n01", Status: "error", Message: "disk /dev/sda not found"})
				}
			},
			errType: ErrNodeReported,
			calls:   []string{"lookup", "clone", "export", "boot:install", "power", "power:disk", "boot:local", "unexport", "destroy"},
		},
		{
			name: "digest mismatch",
			setup: func(r *rig) {
				r.onBoot = func(r *rig, _ int) {
					r.checkInAfter(time.Second, CheckIn{Node: "r01n01", Status: "ok", Digest: "sha256:00"})
				}
			},
			errType: ErrDigestMismatch,
			calls:   []string{"lookup", "clone", "export", "boot:install", "power", "power:disk", "boot:local", "unexport", "destroy"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			tt.setup(r)
			_, err := r.execute()
			wantErrType(t, err, tt.errType)
			wantCalls(t, r.calls, tt.calls...)
		})
	}
}

func TestRetryableErrorIsRetried(t *testing.T) {
	r := newRig(t)
	failures := 2
	r.env.OnActivity(ActivityExport, mock.Anything, mock.Anything).Return(func(_ context.Context, node string) (ExportResult, error) {
		if failures > 0 {
			failures--
			return ExportResult{}, errors.New("image server busy")
		}
		return ExportResult{URL: "http://x/exports/" + node + "/image.raw", Digest: digest}, nil
	})
	r.onBoot = func(r *rig, _ int) {
		r.checkInAfter(time.Second, CheckIn{Node: "r01n01", Status: "ok", Digest: digest})
	}
	if _, err := r.execute(); err != nil {
		t.Fatal(err)
	}
	if failures != 0 {
		t.Errorf("export was not retried")
	}
}
