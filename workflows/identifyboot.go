package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// IdentifyBootInput asks for Node to be booted into identify mode for the
// identification of Scope.
type IdentifyBootInput struct {
	Node  string
	Scope string // [a-z0-9][a-z0-9._-]* (max 63): the identify workflow "identify/<scope>" the agent asks
}

// IdentifyBootResult says which node was booted into identify mode.
type IdentifyBootResult struct {
	Node, Rack, Scope string
}

// IdentifyBoot boots a machine into identify mode (workflow ID
// "node/<name>", the lock it shares with Provision, Reinstall and
// Release): look it up → boot profile "identify" for every MAC (the agent
// with the scope's identify URL and token) → a power cycle into PXE,
// holding a power-on permit of its rack. It returns once the machine is
// booting: the agent then waits for its USB drive and asks identify/<scope>
// for its identity (Purdue's USB identify). Provision replaces the profile
// afterwards.
//
// The machine must be in the inventory (its MACs and BMC); machines
// rackflow does not know at all reach identify mode through the netboot
// service's pool instead.
func IdentifyBoot(ctx workflow.Context, in IdentifyBootInput) (IdentifyBootResult, error) {
	b := &identifyBoot{in: in, nodeOp: nodeOp{
		title:    fmt.Sprintf("**%s** boot into identify mode (%s)", in.Node, in.Scope),
		progress: Progress{Node: in.Node},
	}}
	if err := b.progressQuery(ctx); err != nil {
		return IdentifyBootResult{}, err
	}
	res, err := b.run(ctx)
	if err != nil {
		b.progress.Error = err.Error()
		dctx, cancel := workflow.NewDisconnectedContext(ctx)
		defer cancel()
		b.setPhase(dctx, PhaseFailed, firstLine(err.Error()))
	}
	b.releasePermits(ctx)
	return res, err
}

type identifyBoot struct {
	nodeOp
	in IdentifyBootInput
}

func (b *identifyBoot) run(ctx workflow.Context) (IdentifyBootResult, error) {
	if !validIdentifyName(b.in.Scope) {
		return IdentifyBootResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("identify boot of %s: invalid scope %q (want [a-z0-9][a-z0-9._-]*, max 63)", b.in.Node, b.in.Scope), ErrInvalidName, nil)
	}
	b.setPhase(ctx, PhaseStarting, "looking up "+b.in.Node)
	if err := b.lookup(ctx, b.in.Node); err != nil {
		return IdentifyBootResult{}, err
	}
	name := b.node.Name
	if err := b.step(ctx, PhaseSettingBoot, "boot profile: identify "+b.in.Scope, shortOpts,
		"boot profile of "+name+": identify "+b.in.Scope, ActivitySetBoot,
		SetBootInput{Node: name, Mode: BootIdentify, Scope: b.in.Scope}, nil); err != nil {
		return IdentifyBootResult{}, fmt.Errorf("set boot: %w", err)
	}
	b.permits = newPermits(ctx, b.node)
	err := b.withPermit(ctx, PermitPowerOn, func() error {
		return b.step(ctx, PhasePowerCycle, "power cycle into PXE", powerOpts,
			"power cycle "+name+" into PXE (identify mode)", ActivityPowerCycle, PowerCycleInput{Node: name}, nil)
	})
	if err != nil {
		return IdentifyBootResult{}, fmt.Errorf("power cycle: %w", err)
	}
	b.setPhase(ctx, PhaseIdentifying, "in identify mode: waiting for a USB drive (identify/"+b.in.Scope+")")
	return IdentifyBootResult{Node: name, Rack: b.node.Rack, Scope: b.in.Scope}, nil
}
