package workflows

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RolloutWorkflowID is the ID of a rollout: "rollout/<id>".
func RolloutWorkflowID(id string) string { return "rollout/" + id }

// RackRolloutWorkflowID is the ID of a rollout's part on one rack.
func RackRolloutWorkflowID(id, rack string) string { return "rollout/" + id + "/" + rack }

// Rollout signals and queries: any system may send them to "rollout/<id>".
const (
	SignalPause    = "pause"     // no payload: start no new nodes
	SignalResume   = "resume"    // no payload
	SignalCancel   = "cancel"    // payload CancelRequest
	SignalAddNodes = "add-nodes" // payload AddNodes
	SignalStop     = "stop"      // Rollout → RackRollout: failure budget spent
	SignalRackNode = "rack-node" // RackRollout → Rollout: payload RackReport
	// QueryRolloutProgress answers RolloutProgress (Rollout) or RackProgress (RackRollout).
	QueryRolloutProgress = "progress"
	// QueryRolloutEvents takes a sequence number and answers the
	// []NodeEvent after it (Rollout): how watchers print each node's end.
	QueryRolloutEvents = "events"
)

// ActivityResolveNodes resolves a selector to nodes per rack (global queue).
const ActivityResolveNodes = "ResolveNodes"

// Selector names nodes: every node of Racks plus Nodes.
type Selector struct {
	Racks []string
	Nodes []string
}

// RackNodes is the nodes of one rack a selector chose, in slot order.
type RackNodes struct {
	Rack   string
	Nodes  []string
	Limits RackLimits
}

// FailureBudget is how many nodes may fail before a rollout stops starting
// new ones: a Count, or a Percent of the nodes. Zero means no limit.
type FailureBudget struct {
	Count   int
	Percent float64
}

// ParseFailureBudget reads "5" (nodes) or "5%" (of the nodes); "" is no limit.
func ParseFailureBudget(s string) (FailureBudget, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return FailureBudget{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f < 0 || f > 100 {
			return FailureBudget{}, fmt.Errorf("failure budget %q: want a percentage 0…100", s)
		}
		return FailureBudget{Percent: f}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return FailureBudget{}, fmt.Errorf("failure budget %q: want a node count or a percentage such as 5%%", s)
	}
	return FailureBudget{Count: n}, nil
}

// String renders the budget as ParseFailureBudget reads it.
func (b FailureBudget) String() string {
	switch {
	case b.Percent > 0:
		return strconv.FormatFloat(b.Percent, 'f', -1, 64) + "%"
	case b.Count > 0:
		return strconv.Itoa(b.Count)
	}
	return "unlimited"
}

// Exceeded reports whether failed of total nodes is past the budget.
func (b FailureBudget) Exceeded(failed, total int) bool {
	switch {
	case b.Percent > 0:
		return float64(failed)*100 > b.Percent*float64(total)
	case b.Count > 0:
		return failed > b.Count
	}
	return false
}

// RolloutInput asks for the selected nodes to be provisioned with
// Image@Version, rack by rack in parallel.
type RolloutInput struct {
	ID             string
	Selector       Selector
	Image, Version string
	// Window is the most nodes of one rack started and not finished at
	// once (sliding window); 0 takes the rack's in-flight limit, else 8.
	Window int
	// MaxFailures is the overall budget; RackMaxFailures applies per rack.
	MaxFailures, RackMaxFailures FailureBudget
	CheckInTimeout               time.Duration
	// ReplaceRoots lets nodes that run another image or version be
	// re-provisioned (their roots are replaced).
	ReplaceRoots bool
	// Reinstall runs each node's Reinstall instead of its Provision: the
	// node's root is destroyed and cloned again whatever it ran (Purdue's
	// reinstall instead of repair), so ReplaceRoots does not matter.
	Reinstall bool `json:",omitempty"`
	// User is the requesting user's DN, passed to every node's Provision:
	// each node checks User owns it or is a member (a refused node fails
	// with NotOwner and counts against the budget). Empty: not checked.
	User string
}

// CancelRequest cancels a rollout: no new nodes start; with Undo, running
// nodes are cancelled (their Provision undoes its steps), else they finish.
type CancelRequest struct{ Undo bool }

// AddNodes adds nodes to a running rollout.
type AddNodes struct{ Selector Selector }

// NodeFailure is a node that was not provisioned: where and why.
type NodeFailure struct {
	Node, Rack string
	Step       string // phase the node failed in, "busy" or "cancelled"
	Error      string
}

// RackProgress counts one rack's nodes by state.
type RackProgress struct {
	Rack                                         string
	Total, Pending, Running, Provisioned, Failed int
	Paused, Stopped, Cancelled                   bool
	Failures                                     []NodeFailure
}

// RackReport is a rack's progress, sent to the rollout after each node
// (Node) ends and once when the rack is done.
type RackReport struct {
	Progress RackProgress
	Node     *NodeEvent
	Done     bool
}

// NodeEvent is the end of one node's provisioning within a rollout.
type NodeEvent struct {
	Seq        int // 1, 2, … in the order the rollout learnt of them
	Node, Rack string
	OK         bool
	Step       string // for a failure: as NodeFailure.Step
	Error      string
	At         time.Time
}

// RolloutState is where a rollout stands.
type RolloutState string

// Rollout states.
const (
	RolloutRunning    RolloutState = "running"
	RolloutPaused     RolloutState = "paused"
	RolloutCancelling RolloutState = "cancelling"
	RolloutCompleted  RolloutState = "completed"
	RolloutFailed     RolloutState = "failed" // failure budget spent, or no node provisioned
	RolloutCancelled  RolloutState = "cancelled"
)

// RolloutProgress answers the rollout's progress query.
type RolloutProgress struct {
	ID, Image, Version string
	State              RolloutState
	Racks              []RackProgress
	Total, Provisioned int
	Failed, Running    int
	Started            time.Time
	ETA                time.Time // zero until a node has finished
}

// RolloutResult is a finished rollout's report.
type RolloutResult struct {
	ID, Image, Version string
	State              RolloutState
	Total              int
	Provisioned        []string
	Failures           []NodeFailure // every node that failed, with its step and error
	Skipped            []string      // nodes never started: budget spent or rollout cancelled
	Started, Ended     time.Time
}
