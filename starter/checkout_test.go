package starter

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/mocks"

	"github.com/rackflow/rackflow/workflows"
)

func TestStartCheckoutExpiryRefusesBadInput(t *testing.T) {
	c := &mocks.Client{} // any call fails the test: nothing may reach Temporal
	for name, in := range map[string]workflows.CheckoutExpiryInput{
		"no node":       {User: "uid=a", Duration: time.Hour},
		"no user":       {Node: "r01n01", Duration: time.Hour},
		"zero duration": {Node: "r01n01", User: "uid=a"},
		"negative":      {Node: "r01n01", User: "uid=a", Duration: -time.Minute},
	} {
		if _, err := New(c).StartCheckoutExpiry(context.Background(), in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c.AssertExpectations(t)
}

func TestCancelCheckoutExpiry(t *testing.T) {
	ctx := context.Background()
	describe := func(status enums.WorkflowExecutionStatus) *workflowservice.DescribeWorkflowExecutionResponse {
		return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflow.WorkflowExecutionInfo{
			Execution: &common.WorkflowExecution{WorkflowId: "checkout/r01n01", RunId: "run-1"}, Status: status,
		}}
	}

	c := &mocks.Client{}
	c.On("DescribeWorkflowExecution", mock.Anything, "checkout/r01n01", "").Return(describe(enums.WORKFLOW_EXECUTION_STATUS_RUNNING), nil)
	c.On("CancelWorkflow", mock.Anything, "checkout/r01n01", "run-1").Return(nil).Once()
	if ok, err := New(c).CancelCheckoutExpiry(ctx, "r01n01"); !ok || err != nil {
		t.Errorf("running timer: %v, %v; want cancelled", ok, err)
	}
	c.AssertExpectations(t)

	c = &mocks.Client{}
	c.On("DescribeWorkflowExecution", mock.Anything, "checkout/r01n01", "").Return(describe(enums.WORKFLOW_EXECUTION_STATUS_COMPLETED), nil)
	if ok, err := New(c).CancelCheckoutExpiry(ctx, "r01n01"); ok || err != nil {
		t.Errorf("expired timer: %v, %v; want nothing to cancel", ok, err)
	}

	c = &mocks.Client{}
	c.On("DescribeWorkflowExecution", mock.Anything, "checkout/r01n01", "").Return(nil, serviceerror.NewNotFound("no such workflow"))
	if ok, err := New(c).CancelCheckoutExpiry(ctx, "r01n01"); ok || err != nil {
		t.Errorf("no timer: %v, %v; want nothing to cancel", ok, err)
	}
}
