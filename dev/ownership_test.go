package dev

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/rackflow/rackflow/workflows"
)

// TestOwnershipGuardsNodeOps runs node operations as directory users on the
// virtual rack with --ldap: alice checks out r01n01 and r01n02 and
// provisions them (RackflowOwner = alice, found through the visibility
// API); bob's Provision of r01n01 is refused with NotOwner before anything
// is touched; alice's Release of r01n02 leaves it free in the directory.
func TestOwnershipGuardsNodeOps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := startLDAPEnv(ctx, t, 3)
	alice, bob := dialUser(ctx, t, env, "alice"), dialUser(ctx, t, env, "bob")
	for _, n := range []string{"r01n01", "r01n02"} {
		if err := alice.Checkout(ctx, n); err != nil {
			t.Fatal(err)
		}
	}

	// alice provisions her nodes.
	var runs []string
	for _, n := range []string{"r01n01", "r01n02"} {
		run, err := env.Client.Provision(ctx, workflows.ProvisionInput{Node: n, Image: DemoImage, Version: "v1", User: alice.Me()})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run.RunID)
		if _, err := env.Client.WaitProvision(ctx, run); err != nil {
			t.Fatalf("alice's provision of %s: %v", n, err)
		}
	}
	query := fmt.Sprintf("WorkflowType = 'Provision' AND ExecutionStatus = 'Completed' AND RackflowOwner = '%s'", alice.Me())
	var (
		resp *workflowservice.ListWorkflowExecutionsResponse
		err  error
	)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if resp, err = env.Client.Temporal().ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query}); err != nil {
			t.Fatal(err)
		}
		if len(resp.GetExecutions()) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if got := len(resp.GetExecutions()); got != 2 {
		t.Fatalf("%d completed Provisions with RackflowOwner = alice, want 2", got)
	}

	// bob's provision of alice's r01n01 is refused, quickly, and touches nothing.
	root, err := env.Images.Root(ctx, "r01n01")
	if err != nil {
		t.Fatal(err)
	}
	n1, _ := env.Inventory.Node("r01n01")
	profile, err := env.Netboot.Store().Get(n1.MACs[0])
	if err != nil {
		t.Fatal(err)
	}
	boots := env.Rack.Node("r01n01").State().NetBoots
	start := time.Now()
	run, err := env.Client.Provision(ctx, workflows.ProvisionInput{Node: "r01n01", Image: DemoImage, Version: "v2", ReplaceRoot: true, User: bob.Me()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.Client.WaitProvision(ctx, run)
	if !workflows.IsApplicationError(err, workflows.ErrNotOwner) {
		t.Fatalf("bob's provision of alice's node: %v, want NotOwner", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the refusal took %s", d)
	}
	t.Logf("bob refused in %s: %v", time.Since(start).Round(time.Millisecond), err)
	if got, err := env.Images.Root(ctx, "r01n01"); err != nil || got.Version != root.Version || got.Digest != root.Digest {
		t.Errorf("root of r01n01 after bob's refusal = %+v, %v; want %+v", got, err, root)
	}
	if got, err := env.Netboot.Store().Get(n1.MACs[0]); err != nil || got.Mode != profile.Mode || strings.Join(got.Args, " ") != strings.Join(profile.Args, " ") {
		t.Errorf("boot profile of r01n01 after bob's refusal = %+v, %v; want %+v", got, err, profile)
	}
	if got := env.Rack.Node("r01n01").State().NetBoots; got != boots {
		t.Errorf("r01n01 netbooted %d times after bob's refusal, want %d", got, boots)
	}

	// alice releases r01n02: free in the directory; r01n01 is still hers.
	rel, err := env.Client.Release(ctx, workflows.ReleaseInput{Node: "r01n02", User: alice.Me()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.WaitRelease(ctx, rel); err != nil {
		t.Fatalf("alice's release of r01n02: %v", err)
	}
	owners, err := bob.Owners(ctx, []string{"r01n01", "r01n02"})
	if err != nil || len(owners) != 2 {
		t.Fatalf("owners = %v, %v", owners, err)
	}
	if owners[0].Owner != alice.Me() || owners[1].Owner != "" {
		t.Errorf("owners after the release = %+v; want r01n01 alice's, r01n02 free", owners)
	}
}
