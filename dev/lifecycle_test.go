package dev

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/rackflow/rackflow/activities/imagestore"
	"github.com/rackflow/rackflow/netboot"
	"github.com/rackflow/rackflow/workflows"
)

// TestReinstallAndRelease runs the node lifecycle on the virtual rack:
// two nodes provisioned with v1; r01n01 reinstalled with v2 (its root
// replaced, the node booted again); r01n02 released (powered off) and
// r01n01 released to its reference environment: roots gone, boot profiles
// local, exports withdrawn.
func TestReinstallAndRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env := startEnv(ctx, t, 2, time.Minute, nil)
	if sum, err := env.ProvisionAll(ctx, DemoImage, "v1", io.Discard); err != nil || sum.Provisioned != 2 {
		t.Fatalf("%v, %v", sum, err)
	}
	boots := env.Rack.Node("r01n01").State().NetBoots

	run, err := env.Client.Reinstall(ctx, workflows.ReinstallInput{Node: "r01n01", Image: DemoImage, Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := env.Client.WaitReinstall(ctx, run)
	if err != nil {
		t.Fatalf("reinstall: %v", err)
	}
	root, err := env.Images.Root(ctx, "r01n01")
	if err != nil || root.Version != "v2" {
		t.Fatalf("root of r01n01 after the reinstall = %+v, %v; want v2", root, err)
	}
	if got := env.Rack.Node("r01n01").State().NetBoots; got != boots+1 {
		t.Errorf("r01n01 netbooted %d times in all, want %d", got, boots+1)
	}
	t.Logf("reinstall: %+v", res)
	saveHistory(t, env, run.WorkflowID, "reinstall-ok.json")

	for _, rel := range []workflows.ReleaseInput{{Node: "r01n02"}, {Node: "r01n01", Policy: workflows.ReleaseReference}} {
		run, err := env.Client.Release(ctx, rel)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Client.WaitRelease(ctx, run); err != nil {
			t.Fatalf("release %s: %v", rel.Node, err)
		}
		if _, err := env.Images.Root(ctx, rel.Node); !errors.Is(err, imagestore.ErrNoRoot) {
			t.Errorf("root of %s after its release: %v, want ErrNoRoot", rel.Node, err)
		}
		n, _ := env.Inventory.Node(rel.Node)
		if p, err := env.Netboot.Store().Get(n.MACs[0]); err != nil || p.Mode != netboot.ModeLocal {
			t.Errorf("boot profile of %s after its release = %+v, %v; want local", rel.Node, p, err)
		}
		saveHistory(t, env, run.WorkflowID, "release-"+rel.PolicyOrDefault()+".json")
	}
	if env.Rack.Node("r01n02").State().Power {
		t.Error("r01n02 is still on after a power-off release")
	}
	if !env.Rack.Node("r01n01").State().Power {
		t.Error("r01n01 is off after a release to its reference environment (a power cycle to disk)")
	}
}
