package starter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"
	"go.temporal.io/sdk/temporal"

	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/workflows"
)

// overTheWire returns err as a client sees it: through the failure
// converter, as an update's outcome travels.
func overTheWire(err error) error {
	fc := temporal.GetDefaultFailureConverter()
	return fc.FailureToError(fc.ErrorToFailure(err))
}

// updateReturning mocks one identify update of scope r01 whose handle
// answers with a or err.
func updateReturning(t *testing.T, a workflows.Assignment, err error) *mocks.Client {
	c := &mocks.Client{}
	h := &mocks.WorkflowUpdateHandle{}
	h.On("Get", mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		*args.Get(1).(*workflows.Assignment) = a
	}).Return(err)
	c.On("UpdateWorkflow", mock.Anything, mock.MatchedBy(func(o client.UpdateWorkflowOptions) bool {
		req, ok := o.Args[0].(workflows.IdentifyRequest)
		return o.WorkflowID == "identify/r01" && o.UpdateName == workflows.UpdateIdentify && o.UpdateID == "" &&
			o.WaitForStage == client.WorkflowUpdateStageCompleted && ok && req.MAC == "02:52:46:00:00:01" && req.From == "10.9.0.7"
	})).Return(h, nil)
	t.Cleanup(func() { c.AssertExpectations(t) })
	return c
}

func TestIdentifyOutcomes(t *testing.T) {
	call := netboot.IdentifyCall{Scope: "r01", MAC: "02:52:46:00:00:01", From: "10.9.0.7"}
	first := workflows.Assignment{Slot: 3, Name: "r01n03", IP: "10.1.0.3", MAC: call.MAC, At: time.Unix(1e9, 0).UTC()}
	want := netboot.IdentifyAssignment{Scope: "r01", Slot: 3, Name: "r01n03", IP: "10.1.0.3", MAC: call.MAC}
	ctx := context.Background()

	got, err := New(updateReturning(t, first, nil)).Identify(ctx, call)
	if err != nil || got != want {
		t.Fatalf("new assignment: %+v, %v", got, err)
	}

	assigned := overTheWire(temporal.NewNonRetryableApplicationError("already slot 3", workflows.ErrMACAssigned, nil, first))
	got, err = New(updateReturning(t, workflows.Assignment{}, assigned)).Identify(ctx, call)
	if err != nil || got != want {
		t.Fatalf("MAC already assigned: %+v, %v; want the same answer %+v", got, err, want)
	}

	for name, tt := range map[string]struct {
		err  error
		want error
	}{
		"exhausted":   {overTheWire(temporal.NewNonRetryableApplicationError("full", workflows.ErrPlanExhausted, nil)), netboot.ErrPlanExhausted},
		"invalid MAC": {overTheWire(temporal.NewNonRetryableApplicationError("bad", workflows.ErrInvalidMAC, nil)), netboot.ErrMACRefused},
		"closing":     {overTheWire(temporal.NewNonRetryableApplicationError("ending", workflows.ErrIdentifyClosed, nil)), netboot.ErrNoIdentify},
	} {
		_, err := New(updateReturning(t, workflows.Assignment{}, tt.err)).Identify(ctx, call)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", name, err, tt.want)
		}
	}

	c := &mocks.Client{}
	c.On("UpdateWorkflow", mock.Anything, mock.Anything).Return(nil, serviceerror.NewNotFound("workflow not found for ID: identify/r01"))
	if _, err := New(c).Identify(ctx, call); !errors.Is(err, netboot.ErrNoIdentify) {
		t.Errorf("no workflow: got %v, want ErrNoIdentify", err)
	}

	c = &mocks.Client{}
	c.On("UpdateWorkflow", mock.Anything, mock.Anything).Return(nil, errors.New("unavailable"))
	dctx, cancel := context.WithTimeout(ctx, 0)
	defer cancel()
	if _, err := New(c).Identify(dctx, call); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: got %v, want DeadlineExceeded", err)
	}
}

func TestIdentifySignalsAndStart(t *testing.T) {
	ctx := context.Background()
	c := &mocks.Client{}
	c.On("SignalWorkflow", mock.Anything, "identify/r01", "", workflows.SignalIdentifySkip, workflows.SkipRequest{Slot: 4}).Return(nil).Once()
	c.On("SignalWorkflow", mock.Anything, "identify/r01", "", workflows.SignalIdentifyUndo, workflows.UndoRequest{}).Return(nil).Once()
	c.On("SignalWorkflow", mock.Anything, "identify/r02", "", workflows.SignalIdentifyFinish, nil).
		Return(serviceerror.NewNotFound("workflow execution already completed")).Once()
	s := New(c)
	if err := s.IdentifySkip(ctx, "r01", 4); err != nil {
		t.Error(err)
	}
	if err := s.IdentifyUndo(ctx, "r01", 0); err != nil {
		t.Error(err)
	}
	if err := s.IdentifyFinish(ctx, "r02"); !errors.Is(err, ErrNoIdentify) {
		t.Errorf("finish of no identification: %v", err)
	}

	// An invalid plan never reaches Temporal.
	if _, err := s.StartIdentify(ctx, workflows.IdentifyInput{Scope: "r01", Plan: []workflows.PlanEntry{{Name: "a", IP: "x"}}}); !workflows.IsApplicationError(err, workflows.ErrInvalidPlan) {
		t.Errorf("invalid plan: %v", err)
	}
	c.On("ExecuteWorkflow", mock.Anything, mock.MatchedBy(func(o client.StartWorkflowOptions) bool {
		return o.ID == "identify/r01" && o.TaskQueue == workflows.TaskQueue &&
			o.WorkflowIDConflictPolicy.String() == "Fail" && o.StaticSummary == "identify r01: 2 positions, slot 5 a … slot 6 b"
	}), mock.Anything, mock.MatchedBy(func(in workflows.IdentifyInput) bool {
		return len(in.Plan) == 2 && in.Plan[1].Slot == 6 && in.Grace == workflows.DefaultIdentifyGrace
	})).Return(nil, serviceerror.NewWorkflowExecutionAlreadyStarted("running", "", "run-1")).Once()
	run, err := s.StartIdentify(ctx, workflows.IdentifyInput{Scope: "r01", FirstSlot: 5, Plan: []workflows.PlanEntry{{Name: "a", IP: "10.0.0.1"}, {Name: "b", IP: "10.0.0.2"}}})
	if !errors.Is(err, ErrIdentifyRunning) || run.RunID != "run-1" {
		t.Errorf("start of a running scope: %+v, %v", run, err)
	}
	c.AssertExpectations(t)
}

func TestIdentifyConfirmation(t *testing.T) {
	call := netboot.IdentifyCall{Scope: "r01", MAC: "02:52:46:00:00:01", From: "10.1.0.3", Confirm: true}
	confirmed := workflows.Assignment{Slot: 3, Name: "r01n03", IP: "10.1.0.3", MAC: call.MAC, Confirmed: time.Unix(1e9, 0).UTC(), ConfirmedFrom: "10.1.0.3"}
	confirm := func(a workflows.Assignment, err error) *mocks.Client {
		c := &mocks.Client{}
		h := &mocks.WorkflowUpdateHandle{}
		h.On("Get", mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
			*args.Get(1).(*workflows.Assignment) = a
		}).Return(err)
		c.On("UpdateWorkflow", mock.Anything, mock.MatchedBy(func(o client.UpdateWorkflowOptions) bool {
			req, ok := o.Args[0].(workflows.IdentifyRequest)
			return o.WorkflowID == "identify/r01" && o.UpdateName == workflows.UpdateIdentifyConfirm && ok && req.MAC == call.MAC && req.From == "10.1.0.3"
		})).Return(h, nil)
		t.Cleanup(func() { c.AssertExpectations(t) })
		return c
	}
	got, err := New(confirm(confirmed, nil)).Identify(context.Background(), call)
	if err != nil || got != (netboot.IdentifyAssignment{Scope: "r01", Slot: 3, Name: "r01n03", IP: "10.1.0.3", MAC: call.MAC}) {
		t.Fatalf("confirmation: %+v, %v", got, err)
	}
	undone := overTheWire(temporal.NewNonRetryableApplicationError("no position", workflows.ErrNotAssigned, nil))
	if _, err := New(confirm(workflows.Assignment{}, undone)).Identify(context.Background(), call); !errors.Is(err, netboot.ErrMACRefused) {
		t.Errorf("confirmation of an undone MAC: %v, want ErrMACRefused", err)
	}
}
