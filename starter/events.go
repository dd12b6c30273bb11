package starter

import (
	"context"

	"github.com/rackflow/rackflow/workflows"
)

// RolloutEvents returns the nodes that ended in rollout id after event
// number since (0: from the start), in order; each event's Seq is the
// since of the next call.
func (c *Client) RolloutEvents(ctx context.Context, id string, since int) ([]workflows.NodeEvent, error) {
	v, err := c.c.QueryWorkflow(ctx, workflows.RolloutWorkflowID(id), "", workflows.QueryRolloutEvents, since)
	if err != nil {
		return nil, c.rolloutErr(id, "events", err)
	}
	var evs []workflows.NodeEvent
	return evs, v.Get(&evs)
}
