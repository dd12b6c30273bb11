package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/rackflow/rackflow/workflows"
)

// queueSample is the global queue's workflow-task backlog at one moment.
type queueSample struct {
	backlog       int64
	age           time.Duration
	addRate       float32 // tasks per second
	dispatchRate  float32
	pollers       int
	describeError error
}

func (q queueSample) String() string {
	if q.describeError != nil {
		return "queue: " + q.describeError.Error()
	}
	return fmt.Sprintf("queue %q: %d workflow tasks waiting (oldest %s), %.0f/s in, %.0f/s out, %d pollers",
		workflows.TaskQueue, q.backlog, fmtDur(q.age), q.addRate, q.dispatchRate, q.pollers)
}

// sampleQueue describes the workflow-task side of the global task queue
// (where every workflow's tasks are dispatched) with its statistics.
func (b *bench) sampleQueue(ctx context.Context) queueSample {
	resp, err := b.env.Client.Temporal().WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace:     b.env.Temporal.Namespace(),
		TaskQueue:     &taskqueuepb.TaskQueue{Name: workflows.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: enumspb.TASK_QUEUE_TYPE_WORKFLOW,
		ReportStats:   true,
	})
	if err != nil {
		return queueSample{describeError: err}
	}
	s := resp.GetStats()
	return queueSample{
		backlog: s.GetApproximateBacklogCount(), age: s.GetApproximateBacklogAge().AsDuration(),
		addRate: s.GetTasksAddRate(), dispatchRate: s.GetTasksDispatchRate(), pollers: len(resp.GetPollers()),
	}
}

// queueMax keeps the largest backlog seen.
type queueMax struct {
	mu  sync.Mutex
	max queueSample
}

func (m *queueMax) add(q queueSample) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if q.describeError == nil && (q.backlog > m.max.backlog || q.age > m.max.age) {
		m.max.backlog = max(m.max.backlog, q.backlog)
		m.max.age = max(m.max.age, q.age)
		m.max.pollers = q.pollers
	}
}

func (m *queueMax) get() queueSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.max
}
