package starter

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rackflow/rackflow/workflows"
)

func TestNewRolloutID(t *testing.T) {
	at := time.Date(2026, 11, 20, 23, 15, 42, 0, time.FixedZone("CET", 3600))
	re := regexp.MustCompile(`^20261120-2215-[0-9a-f]{4}$`) // UTC
	seen := map[string]bool{}
	for range 20 {
		id := NewRolloutID(at)
		if !re.MatchString(id) {
			t.Fatalf("NewRolloutID = %q, want %s", id, re)
		}
		seen[id] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 IDs of the same minute are all %q", NewRolloutID(at))
	}
}

func TestRolloutIDOf(t *testing.T) {
	for id, want := range map[string]string{
		workflows.RolloutWorkflowID("20261120-2315-ab12"): "20261120-2315-ab12",
		"rollout/x":   "x",
		"node/r01n01": "node/r01n01",
	} {
		if got := RolloutIDOf(id); got != want {
			t.Errorf("RolloutIDOf(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestDescribeSelector(t *testing.T) {
	tests := []struct {
		sel  workflows.Selector
		want string
	}{
		{workflows.Selector{Racks: []string{"r01", "r02"}}, "r01,r02"},
		{workflows.Selector{Nodes: []string{"r01n01"}}, "1 node (r01n01)"},
		{workflows.Selector{Nodes: []string{"r01n01", "r01n02", "r03n07"}}, "3 nodes"},
		{workflows.Selector{Racks: []string{"r01"}, Nodes: []string{"r02n01"}}, "r01 + 1 node"},
		{workflows.Selector{Racks: []string{"r01"}, Nodes: []string{"r02n01", "r02n02"}}, "r01 + 2 nodes"},
		{workflows.Selector{}, ""},
	}
	for _, tt := range tests {
		if got := DescribeSelector(tt.sel); got != tt.want {
			t.Errorf("DescribeSelector(%+v) = %q, want %q", tt.sel, got, tt.want)
		}
	}
}

func TestRolloutDetails(t *testing.T) {
	budget, _ := workflows.ParseFailureBudget("5%")
	got := rolloutDetails(workflows.RolloutInput{
		ID: "x", Selector: workflows.Selector{Racks: []string{"r01", "r02"}, Nodes: []string{"r03n01"}},
		Image: "centos", Version: "v3", MaxFailures: budget, Window: 4,
	})
	for _, s := range []string{"**x**", "**centos**", "**v3**", "rack(s) r01, r02 and on node(s) r03n01",
		"Failure budget 5% overall, unlimited per rack", "window 4 nodes", "check-in timeout 10m0s"} {
		if !strings.Contains(got, s) {
			t.Errorf("details lack %q:\n%s", s, got)
		}
	}
}

// TestStartRolloutRejectsEmptyRequests: nothing reaches Temporal (the
// client here has no connection) for a request that cannot be a rollout.
func TestStartRolloutRejectsEmptyRequests(t *testing.T) {
	c := New(nil)
	for _, in := range []workflows.RolloutInput{
		{Image: "demo", Version: "v1"},
		{Selector: workflows.Selector{Racks: []string{"r01"}}, Version: "v1"},
		{Selector: workflows.Selector{Nodes: []string{"r01n01"}}, Image: "demo"},
	} {
		if _, err := c.StartRollout(context.Background(), in); err == nil {
			t.Errorf("StartRollout(%+v) = nil error", in)
		}
	}
	if err := c.AddRolloutNodes(context.Background(), "x", workflows.Selector{}); err == nil {
		t.Error("AddRolloutNodes with an empty selector = nil error")
	}
}
