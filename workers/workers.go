// Package workers wires workflows and activities to task queues: the global
// queue "rackflow" runs the workflows and the activities that need no rack
// (LookupNode, ResolveNodes, RequestPermit, RequestDrain, CheckOwner,
// ClearOwner); each rack's queue "rackflow-rack-<rack>" runs the activities
// that must run next to the rack.
package workers

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/rackflow/rackflow/activities"
	"github.com/rackflow/rackflow/workflows"
)

// Options tune the workers; zero values take the SDK defaults.
type Options struct {
	// MaxConcurrentActivities caps activities per worker (per queue).
	MaxConcurrentActivities int
	// Interceptors wrap every workflow and activity the workers run (tests
	// record activity spans with them).
	Interceptors []interceptor.WorkerInterceptor
}

// Set is a group of started workers.
type Set struct {
	workers []worker.Worker
}

// Global builds the worker of the global queue: every workflow, and the
// activities that need only the inventory.
func Global(c client.Client, a *activities.Activities, o Options) worker.Worker {
	opts := o.workerOptions()
	// Autoscaled workflow-task pollers: with the default two pollers, a
	// backlog on the sticky queue (hundreds of cached Provisions) starved
	// new workflows' first tasks for over a minute (dev/bench/rollout).
	opts.WorkflowTaskPollerBehavior = worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{})
	w := worker.New(c, workflows.TaskQueue, opts)
	w.RegisterWorkflowWithOptions(workflows.Provision, workflow.RegisterOptions{Name: "Provision"})
	w.RegisterWorkflowWithOptions(workflows.RackLimiter, workflow.RegisterOptions{Name: "RackLimiter"})
	w.RegisterWorkflowWithOptions(workflows.Rollout, workflow.RegisterOptions{Name: "Rollout"})
	w.RegisterWorkflowWithOptions(workflows.RackRollout, workflow.RegisterOptions{Name: "RackRollout"})
	w.RegisterWorkflowWithOptions(workflows.Reinstall, workflow.RegisterOptions{Name: "Reinstall"})
	w.RegisterWorkflowWithOptions(workflows.Release, workflow.RegisterOptions{Name: "Release"})
	w.RegisterWorkflowWithOptions(workflows.Identify, workflow.RegisterOptions{Name: "Identify"})
	w.RegisterWorkflowWithOptions(workflows.IdentifyBoot, workflow.RegisterOptions{Name: "IdentifyBoot"})
	w.RegisterWorkflowWithOptions(workflows.CheckoutExpiry, workflow.RegisterOptions{Name: "CheckoutExpiry"})
	w.RegisterActivityWithOptions(a.LookupNode, activity.RegisterOptions{Name: workflows.ActivityLookupNode})
	w.RegisterActivityWithOptions(a.RequestPermit, activity.RegisterOptions{Name: workflows.ActivityRequestPermit})
	w.RegisterActivityWithOptions(a.ResolveNodes, activity.RegisterOptions{Name: workflows.ActivityResolveNodes})
	w.RegisterActivityWithOptions(a.RequestDrain, activity.RegisterOptions{Name: workflows.ActivityRequestDrain})
	w.RegisterActivityWithOptions(a.CheckOwner, activity.RegisterOptions{Name: workflows.ActivityCheckOwner})
	w.RegisterActivityWithOptions(a.ClearOwner, activity.RegisterOptions{Name: workflows.ActivityClearOwner})
	return w
}

// Rack builds the worker of rack's queue with that rack's activities.
func Rack(c client.Client, rack string, a *activities.Activities, o Options) worker.Worker {
	w := worker.New(c, workflows.RackTaskQueue(rack), o.workerOptions())
	for name, fn := range map[string]any{
		workflows.ActivityClone:            a.Clone,
		workflows.ActivityDestroyRoot:      a.DestroyRoot,
		workflows.ActivityExport:           a.Export,
		workflows.ActivityUnexport:         a.Unexport,
		workflows.ActivityEndSeeding:       a.EndSeeding,
		workflows.ActivitySetBoot:          a.SetBoot,
		workflows.ActivityPowerCycle:       a.PowerCycle,
		workflows.ActivityPowerOff:         a.PowerOff,
		workflows.ActivitySetDiscoveryBoot: a.SetDiscoveryBoot,
		workflows.ActivityRecordIdentified: a.RecordIdentified,
	} {
		w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	return w
}

func (o Options) workerOptions() worker.Options {
	return worker.Options{MaxConcurrentActivityExecutionSize: o.MaxConcurrentActivities, Interceptors: o.Interceptors}
}

// Start starts every worker; on error the ones already started are stopped.
func Start(ws ...worker.Worker) (*Set, error) {
	s := &Set{}
	for _, w := range ws {
		if err := w.Start(); err != nil {
			s.Stop()
			return nil, fmt.Errorf("start worker: %w", err)
		}
		s.workers = append(s.workers, w)
	}
	if len(s.workers) == 0 {
		return nil, errors.New("no workers to start")
	}
	return s, nil
}

// Stop stops every worker, waiting for running activities.
func (s *Set) Stop() {
	for _, w := range s.workers {
		w.Stop()
	}
}
