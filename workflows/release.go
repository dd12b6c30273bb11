package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Release policies: what becomes of the node's power.
const (
	// ReleasePowerOff powers the node off through its BMC (the default).
	ReleasePowerOff = "power-off"
	// ReleaseReference power-cycles the node into its reference environment,
	// the local disk (Kadeploy's "reboot to the reference environment").
	ReleaseReference = "reference"
)

// ReleaseInput asks for Node to be released under Policy (one of the
// Release* constants; empty means ReleasePowerOff).
type ReleaseInput struct {
	Node   string
	Policy string
	// User is the requesting user's DN. When set, Release first checks
	// that User owns the node or is a member (NotOwner otherwise, nothing
	// touched) and, as its last step, clears the node's owner in the
	// directory. Empty: the caller is trusted, nothing is checked and the
	// directory is left alone.
	User string
}

func (in ReleaseInput) withDefaults() ReleaseInput {
	if in.Policy == "" {
		in.Policy = ReleasePowerOff
	}
	return in
}

// PolicyOrDefault is the policy Release will apply.
func (in ReleaseInput) PolicyOrDefault() string { return in.withDefaults().Policy }

// ReleaseResult says what was released.
type ReleaseResult struct {
	Node, Rack, Policy string
}

// Release returns a node to the pool (workflow ID "node/<name>", the lock it
// shares with Provision and Reinstall): look it up → power it off, or
// power-cycle it into the reference environment (local disk) → boot profile
// local disk → withdraw its export → destroy its root (→ clear its owner in
// the ownership directory, when the input names a User, who is checked
// first). Every step succeeds
// when there is nothing to do (a node already off, no export, no root), so a
// Release also completes whatever a failed earlier operation left behind, and
// running it twice is harmless. A failed step fails the run with the step's
// error (UnknownNode, BMCAuth, … are non-retryable); a new Release picks up
// from the start.
func Release(ctx workflow.Context, in ReleaseInput) (ReleaseResult, error) {
	in = in.withDefaults()
	r := &release{in: in, nodeOp: nodeOp{
		title:    fmt.Sprintf("**%s** release (%s)", in.Node, in.Policy),
		progress: Progress{Node: in.Node},
		user:     in.User,
	}}
	if err := r.progressQuery(ctx); err != nil {
		return ReleaseResult{}, err
	}
	res, err := r.run(ctx)
	if err != nil {
		r.progress.Error = err.Error()
		dctx, cancel := workflow.NewDisconnectedContext(ctx)
		defer cancel()
		r.setPhase(dctx, PhaseFailed, firstLine(err.Error()))
	}
	r.releasePermits(ctx)
	return res, err
}

type release struct {
	nodeOp
	in ReleaseInput
}

func (r *release) run(ctx workflow.Context) (ReleaseResult, error) {
	if r.in.Policy != ReleasePowerOff && r.in.Policy != ReleaseReference {
		return ReleaseResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("release policy %q: want %q or %q", r.in.Policy, ReleasePowerOff, ReleaseReference), ErrInvalidPolicy, nil)
	}
	r.setPhase(ctx, PhaseStarting, "looking up "+r.in.Node)
	if err := r.lookupAndCheck(ctx, r.in.Node); err != nil {
		return ReleaseResult{}, err
	}
	name := r.node.Name

	if r.in.Policy == ReleaseReference {
		// Powering a node on counts against the rack's power-on limits.
		r.permits = newPermits(ctx, r.node)
		err := r.withPermit(ctx, PermitPowerOn, func() error {
			return r.step(ctx, PhasePowerCycle, "power cycle into the reference environment (local disk)", powerOpts,
				"hard power cycle "+name+" into its local disk", ActivityPowerCycle, PowerCycleInput{Node: name, Hard: true, Disk: true}, nil)
		})
		if err != nil {
			return ReleaseResult{}, fmt.Errorf("power cycle to local disk: %w", err)
		}
	} else if err := r.step(ctx, PhasePoweringOff, "powering off", powerOpts,
		"power off "+name, ActivityPowerOff, name, nil); err != nil {
		return ReleaseResult{}, fmt.Errorf("power off: %w", err)
	}

	if err := r.step(ctx, PhaseSettingBoot, "boot profile: local disk", shortOpts,
		"boot profile of "+name+": local disk", ActivitySetBoot, SetBootInput{Node: name, Mode: BootLocal}, nil); err != nil {
		return ReleaseResult{}, fmt.Errorf("set boot: %w", err)
	}
	if err := r.step(ctx, PhaseUnexporting, "withdrawing the export", shortOpts,
		"unexport the root of "+name, ActivityUnexport, name, nil); err != nil {
		return ReleaseResult{}, fmt.Errorf("unexport: %w", err)
	}
	if err := r.step(ctx, PhaseDestroying, "destroying the root", undoOpts,
		"destroy the root of "+name, ActivityDestroyRoot, name, nil); err != nil {
		return ReleaseResult{}, fmt.Errorf("destroy root: %w", err)
	}
	// Last, the node holds nothing of its user's any more: it is free in
	// the ownership directory (a user-requested release only).
	if r.user != "" {
		r.setPhase(ctx, PhaseClearOwner, "clearing the owner in the directory")
		if err := workflow.ExecuteActivity(r.opts(ctx, ownerOpts, "clear the owner of "+name+" (released by "+r.user+")"),
			ActivityClearOwner, ClearOwnerInput{Node: name, User: r.user}).Get(ctx, nil); err != nil {
			return ReleaseResult{}, fmt.Errorf("clear owner: %w", err)
		}
	}

	r.setPhase(ctx, PhaseReleased, "released ("+r.in.Policy+")")
	return ReleaseResult{Node: name, Rack: r.node.Rack, Policy: r.in.Policy}, nil
}
