package starter

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"

	"github.com/rackflow/rackflow/workflows"
)

// startedRun is a started workflow run as the mock client returns it.
func startedRun(id string) client.WorkflowRun {
	r := &mocks.WorkflowRun{}
	r.On("GetRunID").Return("run-1")
	r.On("GetID").Return(id)
	return r
}

func TestStartNodeOperations(t *testing.T) {
	tests := []struct {
		name      string
		start     func(c *Client) (Run, error)
		wantImage bool
	}{
		{"release", func(c *Client) (Run, error) {
			return c.Release(context.Background(), workflows.ReleaseInput{Node: "r01n01"})
		}, false},
		{"reinstall", func(c *Client) (Run, error) {
			return c.Reinstall(context.Background(), workflows.ReinstallInput{Node: "r01n01", Image: "demo", Version: "v2", DrainURL: "http://inv/drain"})
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &mocks.Client{}
			var opts client.StartWorkflowOptions
			m.On("ExecuteWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).
				Run(func(args mock.Arguments) { opts = args.Get(1).(client.StartWorkflowOptions) }).
				Return(startedRun("node/r01n01"), nil).Once()
			run, err := tt.start(New(m))
			if err != nil || run != (Run{WorkflowID: "node/r01n01", RunID: "run-1"}) {
				t.Fatalf("run = %+v, %v", run, err)
			}
			if opts.ID != "node/r01n01" || opts.TaskQueue != workflows.TaskQueue || opts.StaticSummary == "" ||
				opts.WorkflowIDConflictPolicy != enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL || !opts.WorkflowExecutionErrorWhenAlreadyStarted {
				t.Errorf("options = %+v", opts)
			}
			if node, _ := opts.TypedSearchAttributes.GetKeyword(workflows.AttrNode); node != "r01n01" {
				t.Errorf("RackflowNode = %q", node)
			}
			if _, ok := opts.TypedSearchAttributes.GetKeyword(workflows.AttrImage); ok != tt.wantImage {
				t.Errorf("RackflowImage set = %v, want %v", ok, tt.wantImage)
			}

			m.On("ExecuteWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).
				Return(nil, serviceerror.NewWorkflowExecutionAlreadyStarted("running", "", "run-0"))
			run, err = tt.start(New(m))
			if !errors.Is(err, ErrNodeBusy) || run.RunID != "run-0" {
				t.Errorf("busy node: run %+v, error %v", run, err)
			}
		})
	}
}

func TestReleaseRejectsUnknownPolicy(t *testing.T) {
	m := &mocks.Client{}
	if _, err := New(m).Release(context.Background(), workflows.ReleaseInput{Node: "r01n01", Policy: "explode"}); err == nil {
		t.Fatal("no error")
	}
	m.AssertNotCalled(t, "ExecuteWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything)
}

func TestSignalDrained(t *testing.T) {
	describe := func(typ string, status enums.WorkflowExecutionStatus) *workflowservice.DescribeWorkflowExecutionResponse {
		return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflow.WorkflowExecutionInfo{
			Execution: &common.WorkflowExecution{WorkflowId: "node/r01n01", RunId: "run-7"},
			Type:      &common.WorkflowType{Name: typ}, Status: status,
		}}
	}
	t.Run("running reinstall", func(t *testing.T) {
		m := &mocks.Client{}
		m.On("DescribeWorkflowExecution", mock.Anything, "node/r01n01", "").Return(describe("Reinstall", enums.WORKFLOW_EXECUTION_STATUS_RUNNING), nil)
		m.On("SignalWorkflow", mock.Anything, "node/r01n01", "run-7", workflows.SignalDrained, nil).Return(nil).Once()
		if err := New(m).SignalDrained(context.Background(), "r01n01"); err != nil {
			t.Fatal(err)
		}
		m.AssertExpectations(t)
	})
	for name, resp := range map[string]*workflowservice.DescribeWorkflowExecutionResponse{
		"running provision":  describe("Provision", enums.WORKFLOW_EXECUTION_STATUS_RUNNING),
		"finished reinstall": describe("Reinstall", enums.WORKFLOW_EXECUTION_STATUS_COMPLETED),
		"no operation":       nil,
	} {
		t.Run(name, func(t *testing.T) {
			m := &mocks.Client{}
			var err error
			if resp == nil {
				err = serviceerror.NewNotFound("none")
			}
			m.On("DescribeWorkflowExecution", mock.Anything, "node/r01n01", "").Return(resp, err)
			if err := New(m).SignalDrained(context.Background(), "r01n01"); !errors.Is(err, ErrNoReinstall) {
				t.Fatalf("error = %v, want ErrNoReinstall", err)
			}
			m.AssertNotCalled(t, "SignalWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything)
		})
	}
}

// TestStartNodeOperationUser: the requesting user travels in the input and
// is RackflowOwner from the start.
func TestStartNodeOperationUser(t *testing.T) {
	const alice = "uid=alice,ou=people,dc=rackflow,dc=test"
	m := &mocks.Client{}
	var opts client.StartWorkflowOptions
	var input workflows.ProvisionInput
	m.On("ExecuteWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).
		Run(func(args mock.Arguments) {
			opts = args.Get(1).(client.StartWorkflowOptions)
			input = args.Get(3).(workflows.ProvisionInput)
		}).
		Return(startedRun("node/r01n01"), nil).Once()
	if _, err := New(m).Provision(context.Background(), workflows.ProvisionInput{Node: "r01n01", Image: "demo", Version: "v1", User: alice}); err != nil {
		t.Fatal(err)
	}
	if input.User != alice {
		t.Errorf("input User = %q", input.User)
	}
	if owner, _ := opts.TypedSearchAttributes.GetKeyword(workflows.AttrOwner); owner != alice {
		t.Errorf("RackflowOwner = %q, want %q", owner, alice)
	}
}
