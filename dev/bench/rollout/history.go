package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/rackflow/rackflow/workflows"
)

// visibilityWait bounds the wait for visibility to list every closed
// Provision of a finished rollout (visibility is written asynchronously).
const visibilityWait = 2 * time.Minute

// fetchParallelism bounds concurrent history and describe calls.
const fetchParallelism = 8

// collect fills st from the Temporal API once its rollout has ended:
//   - per-node durations: each Provision's close − start time, from
//     visibility;
//   - their breakdown, from each Provision's history (activity execution,
//     schedule-to-start, permit waits, boot waits, the rest);
//   - history lengths of every run the rollout caused — the Rollout, each
//     RackRollout run, each Provision, and the racks' RackLimiter runs — from
//     the histories and DescribeWorkflowExecution.
func (b *bench) collect(ctx context.Context, st *runStats, racks []string) error {
	byRollout := fmt.Sprintf("%s = '%s'", workflows.AttrRollout.GetName(), st.id)
	closed := byRollout + " AND WorkflowType = 'Provision' AND ExecutionStatus != 'Running'"
	want := st.ok + len(st.failures)
	deadline := time.Now().Add(visibilityWait)
	for {
		provs, err := b.list(ctx, closed)
		if err != nil {
			return err
		}
		if len(provs) >= want {
			break
		}
		if time.Now().After(deadline) {
			st.notes = append(st.notes, fmt.Sprintf("visibility listed %d of %d closed Provision runs after %s", len(provs), want, visibilityWait))
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	execs, err := b.list(ctx, byRollout)
	if err != nil {
		return err
	}
	quoted := make([]string, len(racks))
	for i, r := range racks {
		quoted[i] = "'" + r + "'"
	}
	limiters, err := b.list(ctx, fmt.Sprintf("WorkflowType = 'RackLimiter' AND %s IN (%s)", workflows.AttrRack.GetName(), strings.Join(quoted, ",")))
	if err != nil {
		return err
	}
	execs = append(execs, limiters...)

	st.maxByType = map[string]histRun{}
	st.runsByType = map[string]int{}
	st.canByType = map[string]int{}
	var mu sync.Mutex
	var parts []breakdown
	var slowest []*historypb.HistoryEvent
	var slowestTotal time.Duration
	sem := make(chan struct{}, fetchParallelism)
	var wg sync.WaitGroup
	errs := make(chan error, len(execs))
	for _, e := range execs {
		typ := e.GetType().GetName()
		st.runsByType[typ]++
		if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
			st.canByType[typ]++
		}
		if typ == "Provision" && e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			st.perNode = append(st.perNode, e.GetCloseTime().AsTime().Sub(e.GetStartTime().AsTime()))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			run := histRun{typ: typ, id: e.GetExecution().GetWorkflowId(), run: e.GetExecution().GetRunId()}
			var p breakdown
			var events []*historypb.HistoryEvent
			var err error
			if typ == "Provision" {
				p, events, err = b.provisionHistory(ctx, run.id, run.run)
				run.events = p.events
			} else {
				run.events, err = b.historyLength(ctx, run.id, run.run)
			}
			if err != nil {
				errs <- fmt.Errorf("%s %s: %w", run.id, run.run, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if run.events > st.maxByType[typ].events {
				st.maxByType[typ] = run
			}
			if run.events > st.largest.events {
				st.largest = run
			}
			if typ == "Provision" && e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				parts = append(parts, p)
				if p.total > slowestTotal {
					slowest, slowestTotal = events, p.total
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	st.parts = meanBreakdown(parts)
	for _, p := range parts {
		st.extraBoots += p.boots - 1
	}
	if b.cfg.profileDir != "" && len(slowest) > 0 {
		path := filepath.Join(b.cfg.profileDir, "slowest-provision-"+strings.ReplaceAll(st.label, " ", "-")+".txt")
		if err := os.WriteFile(path, []byte(timeline(slowest)), 0o644); err != nil {
			return fmt.Errorf("timeline: %w", err)
		}
	}
	return nil
}

// timeline renders a history as one line per event: offset from the
// first event, event ID, type and what it names.
func timeline(events []*historypb.HistoryEvent) string {
	var sb strings.Builder
	first := events[0].GetEventTime().AsTime()
	for _, e := range events {
		detail := ""
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			detail = e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			if detail == workflows.ActivityRequestPermit {
				detail += " " + string(permitKind(e))
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			detail = e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName()
		case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			detail = e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetSignalName()
		}
		fmt.Fprintf(&sb, "%9.3fs %4d %-50s %s\n", e.GetEventTime().AsTime().Sub(first).Seconds(), e.GetEventId(),
			strings.TrimPrefix(e.GetEventType().String(), "EVENT_TYPE_"), detail)
	}
	return sb.String()
}

// list returns every execution visibility finds for query.
func (b *bench) list(ctx context.Context, query string) ([]*workflowpb.WorkflowExecutionInfo, error) {
	var out []*workflowpb.WorkflowExecutionInfo
	var token []byte
	for {
		resp, err := b.env.Client.Temporal().ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: query, NextPageToken: token, PageSize: 1000,
		})
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", query, err)
		}
		out = append(out, resp.GetExecutions()...)
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// historyLength is a run's event count as DescribeWorkflowExecution
// reports it (a running workflow's so far).
func (b *bench) historyLength(ctx context.Context, id, run string) (int, error) {
	d, err := b.env.Client.Temporal().DescribeWorkflowExecution(ctx, id, run)
	if err != nil {
		return 0, err
	}
	return int(d.GetWorkflowExecutionInfo().GetHistoryLength()), nil
}

// provisionHistory reads a Provision run's history and breaks its duration
// down (see breakdown).
func (b *bench) provisionHistory(ctx context.Context, id, run string) (breakdown, []*historypb.HistoryEvent, error) {
	it := b.env.Client.Temporal().GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return breakdown{}, nil, err
		}
		events = append(events, e)
	}
	return analyze(events), events, nil
}

// analyze breaks a Provision history down. The parts do not overlap since
// Provision runs its steps one after the other; rest is what none of them
// covers (workflow tasks, signal and timer round trips, start and close).
func analyze(events []*historypb.HistoryEvent) breakdown {
	type act struct {
		name             string
		scheduled, start time.Time
	}
	var (
		p          breakdown
		first      time.Time
		last       time.Time
		acts       = map[int64]*act{}
		wtasks     = map[int64]time.Time{}
		powerEnd   time.Time
		requesting bool      // a RequestPermit activity is running
		waitFrom   time.Time // RequestPermit completed, grant not yet received
		granted    bool      // the grant came before the RequestPermit completion
		kind       workflows.PermitKind
	)
	p.events = len(events)
	for _, e := range events {
		t := e.GetEventTime().AsTime()
		if first.IsZero() {
			first = t
		}
		last = t
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			name := e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			acts[e.GetEventId()] = &act{name: name, scheduled: t}
			switch name {
			case workflows.ActivityPowerCycle:
				p.boots++
			case workflows.ActivityRequestPermit:
				requesting, granted, kind = true, false, permitKind(e)
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if a := acts[e.GetActivityTaskStartedEventAttributes().GetScheduledEventId()]; a != nil {
				a.start = t
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED, enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			a := acts[activityScheduledID(e)]
			if a == nil || a.start.IsZero() {
				continue
			}
			p.exec += t.Sub(a.start)
			p.queue += a.start.Sub(a.scheduled)
			switch a.name {
			case workflows.ActivityPowerCycle:
				powerEnd = t
			case workflows.ActivityRequestPermit:
				requesting = false
				if !granted {
					waitFrom = t
				}
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			wtasks[e.GetEventId()] = t
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			if s, ok := wtasks[e.GetWorkflowTaskStartedEventAttributes().GetScheduledEventId()]; ok {
				p.wfTask += t.Sub(s)
				if p.wfTasks == 0 {
					p.firstWFT = t.Sub(s)
				}
				p.wfTasks++
				p.wfTaskMax = max(p.wfTaskMax, t.Sub(s))
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			switch e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() {
			case workflows.SignalPermit:
				if requesting {
					granted = true
				} else if !waitFrom.IsZero() {
					d := t.Sub(waitFrom)
					p.limitWait += d
					switch kind {
					case workflows.PermitInFlight:
						p.waitIn += d
					case workflows.PermitClone:
						p.waitClone += d
					case workflows.PermitPowerOn:
						p.waitPower += d
					}
					waitFrom = time.Time{}
				}
			case workflows.SignalCheckIn:
				if !powerEnd.IsZero() {
					p.boot += t.Sub(powerEnd)
					powerEnd = time.Time{}
				}
			}
		}
	}
	p.total = last.Sub(first)
	p.rest = p.total - p.exec - p.queue - p.limitWait - p.boot
	return p
}

// permitKind decodes the kind of the PermitRequest a RequestPermit
// activity was scheduled with ("" when it cannot).
func permitKind(e *historypb.HistoryEvent) workflows.PermitKind {
	var rack string
	var req workflows.PermitRequest
	if err := converter.GetDefaultDataConverter().FromPayloads(e.GetActivityTaskScheduledEventAttributes().GetInput(), &rack, &req); err != nil {
		return ""
	}
	return req.Kind
}

func activityScheduledID(e *historypb.HistoryEvent) int64 {
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
		return e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
		return e.GetActivityTaskFailedEventAttributes().GetScheduledEventId()
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
		return e.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
