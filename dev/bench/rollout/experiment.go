package main

import (
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/rackflow/rackflow/workflows"
)

// startAutoscalingWorker is the -autoscaling-worker experiment (not what
// `rackflow dev` runs): a second worker on the global queue, registered as
// workers.Global registers its workflows and activities, but with the SDK's
// autoscaling poller behavior, which polls the normal and the sticky queue
// with separate pollers. The default behavior (2 mixed pollers) polls only
// the sticky queue while it has a backlog, so the first workflow task of
// every new Provision waits on the normal queue.
func (b *bench) startAutoscalingWorker() error {
	acts := *b.acts
	acts.Permits = b.env.Client
	w := worker.New(b.env.Client.Temporal(), workflows.TaskQueue, worker.Options{
		WorkflowTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{}),
	})
	w.RegisterWorkflowWithOptions(workflows.Provision, workflow.RegisterOptions{Name: "Provision"})
	w.RegisterWorkflowWithOptions(workflows.RackLimiter, workflow.RegisterOptions{Name: "RackLimiter"})
	w.RegisterWorkflowWithOptions(workflows.Rollout, workflow.RegisterOptions{Name: "Rollout"})
	w.RegisterWorkflowWithOptions(workflows.RackRollout, workflow.RegisterOptions{Name: "RackRollout"})
	w.RegisterActivityWithOptions(acts.LookupNode, activity.RegisterOptions{Name: workflows.ActivityLookupNode})
	w.RegisterActivityWithOptions(acts.RequestPermit, activity.RegisterOptions{Name: workflows.ActivityRequestPermit})
	w.RegisterActivityWithOptions(acts.ResolveNodes, activity.RegisterOptions{Name: workflows.ActivityResolveNodes})
	if err := w.Start(); err != nil {
		return fmt.Errorf("autoscaling worker: %w", err)
	}
	b.extraWorker = w
	return nil
}
