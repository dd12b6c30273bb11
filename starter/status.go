package starter

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/rackflow/rackflow/workflows"
)

// NodeStatus is the latest operation of a node as visibility records it.
type NodeStatus struct {
	Node    string    `json:"node"`
	Rack    string    `json:"rack"`
	Phase   string    `json:"phase"`
	Image   string    `json:"image"`
	Version string    `json:"version"`
	Status  string    `json:"status"` // Running, Completed, Failed, …
	Since   time.Time `json:"since"`  // start of a running operation, end of a closed one
	RunID   string    `json:"run_id"`
}

// Status returns the latest operation of each node named, or of every node
// that has one when nodes is empty, sorted by node name.
func (c *Client) Status(ctx context.Context, nodes []string) ([]NodeStatus, error) {
	query := "WorkflowType IN ('Provision', 'Reinstall', 'Release', 'IdentifyBoot')"
	if len(nodes) > 0 {
		quoted := make([]string, len(nodes))
		for i, n := range nodes {
			if strings.ContainsAny(n, `'"\`) {
				return nil, fmt.Errorf("invalid node name %q", n)
			}
			quoted[i] = "'" + n + "'"
		}
		query += " AND " + workflows.AttrNode.GetName() + " IN (" + strings.Join(quoted, ",") + ")"
	}
	type seen struct {
		status  NodeStatus
		started time.Time
	}
	latest := map[string]seen{}
	dc := converter.GetDefaultDataConverter()
	var token []byte
	for {
		resp, err := c.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: 1000})
		if err != nil {
			return nil, fmt.Errorf("list workflows: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			s := NodeStatus{Status: e.GetStatus().String(), RunID: e.GetExecution().GetRunId(), Since: e.GetStartTime().AsTime()}
			if e.GetCloseTime() != nil && !e.GetCloseTime().AsTime().IsZero() {
				s.Since = e.GetCloseTime().AsTime()
			}
			fields := e.GetSearchAttributes().GetIndexedFields()
			for name, dst := range map[string]*string{
				workflows.AttrNode.GetName(): &s.Node, workflows.AttrRack.GetName(): &s.Rack,
				workflows.AttrPhase.GetName(): &s.Phase, workflows.AttrImage.GetName(): &s.Image,
			} {
				if p, ok := fields[name]; ok {
					_ = dc.FromPayload(p, dst)
				}
			}
			if p, ok := e.GetMemo().GetFields()["version"]; ok {
				_ = dc.FromPayload(p, &s.Version)
			}
			if s.Node == "" {
				s.Node = strings.TrimPrefix(e.GetExecution().GetWorkflowId(), "node/")
			}
			started := e.GetStartTime().AsTime()
			if old, ok := latest[s.Node]; !ok || started.After(old.started) {
				latest[s.Node] = seen{s, started}
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			break
		}
	}
	out := make([]NodeStatus, 0, len(latest))
	for _, s := range latest {
		out = append(out, s.status)
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}
