package dev

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rackflow/rackflow/activities/imagestore"
	"github.com/rackflow/rackflow/dev/vrack"
	"github.com/rackflow/rackflow/starter"
	"github.com/rackflow/rackflow/workflows"
)

// TestNodeLifecycle runs the whole node lifecycle of issue 7 on the virtual
// rack with the throwaway directory: alice checks out 4 nodes and
// provisions them; bob's provision is refused with NotOwner; 4 new machines
// boot into identify mode and are identified in slot order by USB
// insertions, one position skipped as dead on arrival; one of alice's nodes
// is reinstalled with another version (rollout --reinstall); bob's checkout for a few seconds
// expires and releases its node; alice releases hers: all free in the
// directory, their roots gone from the image store. Each step's wall time
// is logged ("step ...").
func TestNodeLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	env := startLDAPEnv(ctx, t, 9)
	alice, bob := dialUser(ctx, t, env, "alice"), dialUser(ctx, t, env, "bob")
	mine := []string{"r01n01", "r01n02", "r01n03", "r01n04"}
	fresh := []string{"r01n05", "r01n06", "r01n07", "r01n08"} // the "new" machines
	step := func(name string, start time.Time) {
		t.Logf("step %-42s %6.2fs", name, time.Since(start).Seconds())
	}

	start := time.Now()
	for _, n := range mine {
		if err := alice.Checkout(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	step("checkout of 4 nodes (alice)", start)

	start = time.Now()
	run, err := env.Client.StartRollout(ctx, workflows.RolloutInput{ID: "alice-v1", Selector: workflows.Selector{Nodes: mine}, Image: DemoImage, Version: "v1", User: alice.Me()})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := env.Client.WaitRollout(ctx, "alice-v1"); err != nil || len(res.Provisioned) != 4 {
		t.Fatalf("alice's rollout %s: %+v, %v", run.WorkflowID, res, err)
	}
	step("provision of 4 nodes (rollout, alice)", start)

	start = time.Now()
	brun, err := env.Client.Provision(ctx, workflows.ProvisionInput{Node: "r01n03", Image: DemoImage, Version: "v2", ReplaceRoot: true, User: bob.Me()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.WaitProvision(ctx, brun); !workflows.IsApplicationError(err, workflows.ErrNotOwner) {
		t.Fatalf("bob's provision of alice's r01n03: %v, want NotOwner", err)
	}
	step("bob's provision refused (NotOwner)", start)

	// USB-identify: positions 5…9 of rack r01; slot 6 is dead on arrival.
	plan := make([]workflows.PlanEntry, 5)
	for i := range plan {
		plan[i] = workflows.PlanEntry{Slot: 5 + i, Name: fmt.Sprintf("cn%02d", 5+i), IP: fmt.Sprintf("127.77.0.%d", 5+i)}
	}
	if _, err := env.Client.StartIdentify(ctx, workflows.IdentifyInput{Scope: "r01", Plan: plan}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for _, n := range fresh {
		r, err := env.Client.IdentifyBoot(ctx, workflows.IdentifyBootInput{Node: n, Scope: "r01"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Client.WaitIdentifyBoot(ctx, r); err != nil {
			t.Fatalf("identify boot of %s: %v", n, err)
		}
	}
	for _, n := range fresh {
		waitStep(ctx, t, env.Rack.Node(n), vrack.StepAgent) // the agent is looking at its USB port
	}
	saveHistory(t, env, workflows.NodeWorkflowID("r01n08"), "identifyboot-ok.json")
	step("4 machines booted into identify mode", start)
	want := map[string]int{"r01n05": 5, "r01n06": 7, "r01n07": 8, "r01n08": 9}
	for i, n := range fresh {
		if i == 1 {
			if err := env.Client.IdentifySkip(ctx, "r01", 6); err != nil {
				t.Fatal(err)
			}
		}
		start = time.Now()
		if _, _, err := USBInsert(ctx, env.opts.StateDir, n); err != nil {
			t.Fatal(err)
		}
		st, err := env.Rack.Node(n).WaitFor(ctx, func(s vrack.NodeState) bool { return s.Identity != nil && s.Identity.Confirmed })
		if err != nil {
			t.Fatalf("%s: %v (events %v)", n, err, env.Rack.Node(n).Events())
		}
		if id := st.Identity; id.Slot != want[n] || id.Name != fmt.Sprintf("cn%02d", want[n]) || id.IP != fmt.Sprintf("127.77.0.%d", want[n]) {
			t.Errorf("%s identified as %+v, want slot %d", n, id, want[n])
		}
		step(fmt.Sprintf("usb insert → identified, confirmed (%s)", n), start)
	}
	ist, err := env.Client.IdentifyStatus(ctx, "r01")
	if err != nil {
		t.Fatal(err)
	}
	if ist.Confirmed != 4 || !slices.Equal(ist.Skipped, []int{6}) || ist.Remaining != 0 {
		t.Errorf("identify status = %+v; want 4 confirmed, slot 6 skipped, none left", ist)
	}
	for _, a := range ist.Assignments {
		if a.ConfirmedFrom != a.IP {
			t.Errorf("slot %d confirmed from %s, want its production address %s", a.Slot, a.ConfirmedFrom, a.IP)
		}
	}
	if err := env.Client.IdentifyFinish(ctx, "r01"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.WaitIdentify(ctx, "r01"); err != nil {
		t.Fatal(err)
	}
	saveHistory(t, env, workflows.IdentifyWorkflowID("r01"), "identify-confirmed.json")

	// One node reinstalled with v2, by a rollout that reinstalls.
	start = time.Now()
	if _, err := env.Client.StartRollout(ctx, workflows.RolloutInput{ID: "alice-v2", Selector: workflows.Selector{Nodes: []string{"r01n02"}},
		Image: DemoImage, Version: "v2", Reinstall: true, User: alice.Me()}); err != nil {
		t.Fatal(err)
	}
	if res, err := env.Client.WaitRollout(ctx, "alice-v2"); err != nil || !slices.Equal(res.Provisioned, []string{"r01n02"}) {
		t.Fatalf("reinstall rollout: %+v, %v", res, err)
	}
	saveHistory(t, env, workflows.RolloutWorkflowID("alice-v2"), "rollout-reinstall.json")
	saveHistory(t, env, workflows.RackRolloutWorkflowID("alice-v2", "r01"), "rackrollout-reinstall.json")
	if root, err := env.Images.Root(ctx, "r01n02"); err != nil || root.Version != "v2" {
		t.Fatalf("root of r01n02 after its reinstall: %+v, %v; want v2", root, err)
	}
	step("reinstall of r01n02 to v2 (rollout --reinstall)", start)

	// bob checks r01n09 out for 3 s: the expiry timer releases it.
	if err := bob.Checkout(ctx, "r01n09"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	exp, err := env.Client.StartCheckoutExpiry(ctx, workflows.CheckoutExpiryInput{Node: "r01n09", User: bob.Me(), Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var er workflows.CheckoutExpiryResult
	if err := env.Client.Temporal().GetWorkflow(ctx, exp.WorkflowID, exp.RunID).Get(ctx, &er); err != nil || er.Released == nil {
		t.Fatalf("checkout expiry: %+v, %v", er, err)
	}
	step("checkout for 3s expired and released", start)
	saveHistory(t, env, exp.WorkflowID, "checkoutexpiry-released.json")

	start = time.Now()
	rels := map[string]starter.Run{}
	for _, n := range mine {
		r, err := env.Client.Release(ctx, workflows.ReleaseInput{Node: n, User: alice.Me()})
		if err != nil {
			t.Fatal(err)
		}
		rels[n] = r
	}
	for _, n := range mine {
		if _, err := env.Client.WaitRelease(ctx, rels[n]); err != nil {
			t.Fatalf("release of %s: %v", n, err)
		}
	}
	step("release of 4 nodes (alice)", start)
	owners, err := bob.Owners(ctx, append(slices.Clone(mine), "r01n09"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range owners {
		if o.Owner != "" {
			t.Errorf("%s is still owned by %s", o.Node, o.Owner)
		}
	}
	for _, n := range append(slices.Clone(mine), "r01n09") {
		if _, err := env.Images.Root(ctx, n); !errors.Is(err, imagestore.ErrNoRoot) {
			t.Errorf("root of %s after its release: %v, want ErrNoRoot", n, err)
		}
	}
}

// waitStep waits until node has an event of step s.
func waitStep(ctx context.Context, t *testing.T, n *vrack.Node, s vrack.Step) {
	t.Helper()
	_, err := n.WaitFor(ctx, func(vrack.NodeState) bool {
		return slices.ContainsFunc(n.Events(), func(e vrack.Event) bool { return e.Step == s && e.Err == nil })
	})
	if err != nil {
		t.Fatalf("%s: no %s step: %v (events %v)", n.Name(), s, err, n.Events())
	}
}
