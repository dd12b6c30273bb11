package workflows

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

const (
	alice = "uid=alice,ou=people,dc=rackflow,dc=test"
	bob   = "uid=bob,ou=people,dc=rackflow,dc=test"
	carol = "uid=carol,ou=people,dc=rackflow,dc=test"
)

// directory stands in for the ownership directory behind CheckOwner and
// ClearOwner, answering as the real activities do.
type directory struct {
	mu         sync.Mutex
	configured bool
	owner      map[string]string   // node → owner DN
	members    map[string][]string // node → member DNs
	checked    []CheckOwnerInput
	cleared    []ClearOwnerInput
}

// newDirectory: alice owns r01n01 and r01n02 and lets carol operate
// r01n01; bob owns r01n03.
func newDirectory() *directory {
	return &directory{
		configured: true,
		owner:      map[string]string{"r01n01": alice, "r01n02": alice, "r01n03": bob},
		members:    map[string][]string{"r01n01": {carol}},
	}
}

func (d *directory) register(reg func(name string, fn any), calls func(string)) {
	reg(ActivityCheckOwner, func(_ context.Context, in CheckOwnerInput) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		calls("checkowner")
		d.checked = append(d.checked, in)
		if !d.configured {
			return temporal.NewNonRetryableApplicationError("ownership is not configured on this worker", ErrOwnershipNotConfigured, nil)
		}
		if d.owner[in.Node] == in.User || slices.Contains(d.members[in.Node], in.User) {
			return nil
		}
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s may not operate node %s: it is owned by %s", in.User, in.Node, d.owner[in.Node]), ErrNotOwner, nil)
	})
	reg(ActivityClearOwner, func(_ context.Context, in ClearOwnerInput) (string, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		calls("clearowner")
		d.cleared = append(d.cleared, in)
		if !d.configured {
			return "", temporal.NewNonRetryableApplicationError("ownership is not configured on this worker", ErrOwnershipNotConfigured, nil)
		}
		prev := d.owner[in.Node]
		delete(d.owner, in.Node)
		return prev, nil
	})
}

// newOwnerRig is newNodeRig with the directory's activities.
func newOwnerRig(t *testing.T) (*rig, *directory) {
	r := newNodeRig(t)
	d := newDirectory()
	d.register(func(name string, fn any) {
		r.env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}, func(c string) { r.calls = append(r.calls, c) })
	return r, d
}

func (r *rig) provision(in ProvisionInput) (ProvisionResult, error) {
	r.env.ExecuteWorkflow(Provision, in)
	if !r.env.IsWorkflowCompleted() {
		r.t.Fatal("workflow did not complete")
	}
	var res ProvisionResult
	err := r.env.GetWorkflowResult(&res)
	return res, err
}

func TestProvisionByOwner(t *testing.T) {
	r, d := newOwnerRig(t)
	r.onBoot = checksIn
	if _, err := r.provision(ProvisionInput{Node: "r01n01", Image: "demo", Version: "v2", User: alice}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, r.calls, "lookup", "checkowner", "clone", "export", "boot:install", "power", "boot:local")
	if len(d.checked) != 1 || d.checked[0] != (CheckOwnerInput{Node: "r01n01", User: alice}) {
		t.Errorf("CheckOwner inputs = %+v", d.checked)
	}
	if got := r.attrs[AttrOwner.GetName()]; got != alice {
		t.Errorf("RackflowOwner = %q, want %q", got, alice)
	}
}

func TestReinstallByMember(t *testing.T) {
	r, d := newOwnerRig(t)
	r.onBoot = checksIn
	if _, err := r.reinstall(ReinstallInput{Node: "r01n01", Image: "demo", Version: "v2", User: carol}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, r.calls, "lookup", "checkowner", "destroy", "clone", "export", "boot:install", "power", "boot:local")
	if len(d.checked) != 1 || d.checked[0].User != carol {
		t.Errorf("CheckOwner inputs = %+v", d.checked)
	}
	if got := r.attrs[AttrOwner.GetName()]; got != carol {
		t.Errorf("RackflowOwner = %q, want %q", got, carol)
	}
}

// nodeOps runs each node operation on r01n01 as user.
var nodeOps = []struct {
	name string
	run  func(r *rig, user string) error
}{
	{"provision", func(r *rig, user string) error {
		_, err := r.provision(ProvisionInput{Node: "r01n01", Image: "demo", Version: "v2", User: user})
		return err
	}},
	{"reinstall", func(r *rig, user string) error {
		_, err := r.reinstall(ReinstallInput{Node: "r01n01", Image: "demo", Version: "v2", DrainURL: drainURL, User: user})
		return err
	}},
	{"release", func(r *rig, user string) error {
		_, err := r.release(ReleaseInput{Node: "r01n01", User: user})
		return err
	}},
}

// TestNodeOpsRefuseNonOwner: bob neither owns r01n01 nor is a member: every
// operation fails NotOwner after the look-up and check, nothing else runs
// (no drain, no root, no boot, no power, the owner is not cleared).
func TestNodeOpsRefuseNonOwner(t *testing.T) {
	for _, op := range nodeOps {
		t.Run(op.name, func(t *testing.T) {
			r, d := newOwnerRig(t)
			r.onBoot = checksIn
			err := op.run(r, bob)
			wantErrType(t, err, ErrNotOwner)
			for _, s := range []string{"r01n01", bob, alice} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
			wantCalls(t, r.calls, "lookup", "checkowner")
			if d.owner["r01n01"] != alice {
				t.Errorf("owner of r01n01 = %q, want alice still", d.owner["r01n01"])
			}
			if got := r.phases; len(got) == 0 || got[len(got)-1] != PhaseFailed {
				t.Errorf("phases = %v, want failed last", got)
			}
			if got := r.attrs[AttrOwner.GetName()]; got != bob {
				t.Errorf("RackflowOwner = %q, want the requesting user %q", got, bob)
			}
		})
	}
}

// TestNodeOpsWithoutDirectory: a user that cannot be checked (no directory
// on the worker) is refused, not let through.
func TestNodeOpsWithoutDirectory(t *testing.T) {
	for _, op := range nodeOps {
		t.Run(op.name, func(t *testing.T) {
			r, d := newOwnerRig(t)
			d.configured = false
			r.onBoot = checksIn
			wantErrType(t, op.run(r, alice), ErrOwnershipNotConfigured)
			wantCalls(t, r.calls, "lookup", "checkowner")
		})
	}
}

func TestReleaseByOwnerClearsOwnerLast(t *testing.T) {
	for _, user := range []string{alice, carol} {
		t.Run(strings.SplitN(user, ",", 2)[0], func(t *testing.T) {
			r, d := newOwnerRig(t)
			res, err := r.release(ReleaseInput{Node: "r01n01", User: user})
			if err != nil {
				t.Fatal(err)
			}
			wantCalls(t, r.calls, "lookup", "checkowner", "power:off", "boot:local", "unexport", "destroy", "clearowner")
			if len(d.cleared) != 1 || d.cleared[0] != (ClearOwnerInput{Node: "r01n01", User: user}) {
				t.Errorf("ClearOwner inputs = %+v", d.cleared)
			}
			if _, owned := d.owner["r01n01"]; owned {
				t.Error("r01n01 still has an owner")
			}
			if n := len(r.phases); n < 2 || r.phases[n-2] != PhaseClearOwner || r.phases[n-1] != PhaseReleased {
				t.Errorf("phases = %v, want clearing-owner then released last", r.phases)
			}
			if res.Node != "r01n01" {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

// TestReleaseClearOwnerFailureFailsRelease: a directory that cannot clear
// the owner fails the release (a new Release completes it).
func TestReleaseClearOwnerFailureFailsRelease(t *testing.T) {
	r := newNodeRig(t)
	reg := func(name string, fn any) { r.env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(ActivityCheckOwner, func(context.Context, CheckOwnerInput) error { return nil })
	reg(ActivityClearOwner, func(context.Context, ClearOwnerInput) (string, error) {
		return "", temporal.NewNonRetryableApplicationError("denied", ErrOwnershipAuth, nil)
	})
	_, err := r.release(ReleaseInput{Node: "r01n01", User: alice})
	wantErrType(t, err, ErrOwnershipAuth)
	wantCalls(t, r.calls, "lookup", "power:off", "boot:local", "unexport", "destroy")
}

// TestRolloutChecksEveryNode: a rollout's user travels to every node's
// Provision; the node the user does not own fails NotOwner, the others are
// provisioned.
func TestRolloutChecksEveryNode(t *testing.T) {
	f := newFleet(t)
	d := newDirectory()
	d.register(func(name string, fn any) {
		f.env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}, func(string) {})
	res, err := f.run(RolloutInput{Selector: Selector{Racks: []string{"r01"}}, User: alice})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Provisioned)
	if !slices.Equal(res.Provisioned, []string{"r01n01", "r01n02"}) {
		t.Errorf("provisioned = %v, want r01n01 r01n02", res.Provisioned)
	}
	if len(res.Failures) != 1 || res.Failures[0].Node != "r01n03" || !strings.Contains(res.Failures[0].Error, "owned by "+bob) {
		t.Errorf("failures = %+v, want r01n03 refused (owned by bob)", res.Failures)
	}
	if len(d.checked) != 3 {
		t.Fatalf("CheckOwner ran %d times, want once per node", len(d.checked))
	}
	for _, c := range d.checked {
		if c.User != alice {
			t.Errorf("CheckOwner %+v: want user alice", c)
		}
	}
	if slices.Contains(f.started, "r01n03") {
		t.Error("r01n03 was power-cycled despite the refusal")
	}
}
