package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Defaults of ProvisionInput.
const (
	DefaultCheckInTimeout = 10 * time.Minute
	DefaultBootAttempts   = 2
)

// ProvisionInput asks for Node to be provisioned with Image at Version.
type ProvisionInput struct {
	Node    string
	Image   string
	Version string
	// CheckInTimeout bounds each boot attempt's wait for the agent's
	// check-in (default 10 min).
	CheckInTimeout time.Duration
	// BootAttempts is how many times the node is booted before it is given
	// up: the first is a BMC power cycle, the later ones power off + on
	// (Kadeploy's soft → hard escalation). Default 2.
	BootAttempts int
	// ReplaceRoot replaces a root of another image or version (the node's
	// data on it is lost) instead of failing with RootConflict.
	ReplaceRoot bool
	// User is the requesting user's DN. When set, the first step after the
	// look-up checks in the ownership directory that User owns the node or
	// is a member (else a non-retryable NotOwner error and nothing is
	// touched), and User is the RackflowOwner search attribute. Empty: the
	// caller is trusted and ownership is not checked.
	User string
}

func (in ProvisionInput) withDefaults() ProvisionInput {
	if in.CheckInTimeout <= 0 {
		in.CheckInTimeout = DefaultCheckInTimeout
	}
	if in.BootAttempts <= 0 {
		in.BootAttempts = DefaultBootAttempts
	}
	return in
}

// ProvisionResult is what a provisioned node runs.
type ProvisionResult struct {
	Node, Rack, Image, Version string
	Digest                     string    // of the image the agent wrote
	BootAttempts               int       // boots it took
	CheckedInAt                time.Time // when the agent checked in
	// Torrent is the .torrent of the run's export when the image went
	// through the swarm (zero otherwise): the node seeds it until the
	// rollout ends it (EndSeeding) or its agent's SeedFor passes.
	Torrent Torrent `json:",omitzero"`
}

// Progress is the answer of the "progress" query.
type Progress struct {
	Node, Rack, Image, Version string
	Phase                      Phase
	Step                       string    // human-readable current step
	Since                      time.Time // when Phase was entered
	BootAttempt                int
	RejectedCheckIns           int // check-ins refused (wrong node or run)
	Error                      string
}

// Provision images one node (workflow ID "node/<name>"): clone the image
// version into the node's root → export it → set the node's boot profile →
// power-cycle it through its BMC → await the agent's check-in (a workflow
// timer per boot; on timeout the next boot escalates to power off + on) →
// set the final boot (local disk). It follows HOP-SCOTCH's provisioning steps
// and Kadeploy's per-step timeouts. On failure the completed steps are undone
// in reverse (saga) and the node is reset to its default boot; the error is
// a non-retryable ApplicationError whose type is one of the Err* constants
// when the cause is known.
func Provision(ctx workflow.Context, in ProvisionInput) (ProvisionResult, error) {
	p := newProvision(in, "")
	if err := p.progressQuery(ctx); err != nil {
		return ProvisionResult{}, err
	}
	res, err := p.run(ctx)
	p.end(ctx, err)
	return res, err
}

type provision struct {
	nodeOp
	in   ProvisionInput
	undo []undoStep
}

// newProvision prepares the provisioning of in.Node; title heads the Web
// UI details (default "**node** → image@version").
func newProvision(in ProvisionInput, title string) *provision {
	in = in.withDefaults()
	if title == "" {
		title = fmt.Sprintf("**%s** → %s@%s", in.Node, in.Image, in.Version)
	}
	return &provision{in: in, nodeOp: nodeOp{
		title: title, boots: in.BootAttempts,
		progress: Progress{Node: in.Node, Image: in.Image, Version: in.Version},
		user:     in.User,
	}}
}

type undoStep struct {
	name     string
	activity string
	input    any
}

func (p *provision) run(ctx workflow.Context) (ProvisionResult, error) {
	p.setPhase(ctx, PhaseStarting, "looking up "+p.in.Node)
	if err := p.lookupAndCheck(ctx, p.in.Node, AttrImage.ValueSet(p.in.Image)); err != nil {
		return ProvisionResult{}, err
	}
	return p.provisionNode(ctx)
}

// provisionNode runs the provisioning steps on the node looked up: rack
// permits, clone, export, install boot profile, boots, final boot profile.
// Each completed step pushes its undo.
func (p *provision) provisionNode(ctx workflow.Context) (ProvisionResult, error) {
	if workflow.GetVersion(ctx, permitsVersion, workflow.DefaultVersion, 1) == 1 {
		p.permits = newPermits(ctx, p.node)
	}
	if err := p.withPermit(ctx, PermitInFlight, nil); err != nil {
		return ProvisionResult{}, err
	}

	var root Root
	err := p.withPermit(ctx, PermitClone, func() error {
		p.setPhase(ctx, PhaseCloning, fmt.Sprintf("cloning %s@%s", p.in.Image, p.in.Version))
		return workflow.ExecuteActivity(p.rackOpts(ctx, cloneOpts, fmt.Sprintf("clone %s@%s → root of %s", p.in.Image, p.in.Version, p.node.Name)),
			ActivityClone, CloneInput{Node: p.node.Name, Image: p.in.Image, Version: p.in.Version, Replace: p.in.ReplaceRoot}).Get(ctx, &root)
	})
	if err != nil {
		return ProvisionResult{}, fmt.Errorf("clone: %w", err)
	}
	p.undo = append(p.undo, undoStep{"destroy root", ActivityDestroyRoot, p.node.Name})

	p.setPhase(ctx, PhaseExporting, "exporting the root")
	var export ExportResult
	if err := workflow.ExecuteActivity(p.rackOpts(ctx, shortOpts, "export the root of "+p.node.Name),
		ActivityExport, p.node.Name).Get(ctx, &export); err != nil {
		return ProvisionResult{}, fmt.Errorf("export: %w", err)
	}
	p.undo = append(p.undo, undoStep{"unexport", ActivityUnexport, p.node.Name})

	p.setPhase(ctx, PhaseSettingBoot, "boot profile: install")
	run := workflow.GetInfo(ctx).WorkflowExecution.RunID
	install := SetBootInput{Node: p.node.Name, Mode: BootInstall, ImageURL: export.URL, Digest: export.Digest, Run: run,
		TorrentURL: export.TorrentURL, InfoHash: export.InfoHash}
	if err := workflow.ExecuteActivity(p.rackOpts(ctx, shortOpts, "boot profile of "+p.node.Name+": install"),
		ActivitySetBoot, install).Get(ctx, nil); err != nil {
		return ProvisionResult{}, fmt.Errorf("set boot: %w", err)
	}
	p.undo = append(p.undo, undoStep{"reset boot profile", ActivitySetBoot, SetBootInput{Node: p.node.Name, Mode: BootLocal}})

	checkIn, err := p.boot(ctx, run)
	if err != nil {
		return ProvisionResult{}, err
	}
	if checkIn.Status != "ok" {
		return ProvisionResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("node %s reported: %s", p.node.Name, checkIn.Message), ErrNodeReported, nil)
	}
	if checkIn.Digest != root.Digest {
		return ProvisionResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("node %s wrote %s, want %s", p.node.Name, checkIn.Digest, root.Digest), ErrDigestMismatch, nil)
	}

	p.setPhase(ctx, PhaseFinalizing, "boot profile: local disk")
	if err := workflow.ExecuteActivity(p.rackOpts(ctx, shortOpts, "boot profile of "+p.node.Name+": local disk"),
		ActivitySetBoot, SetBootInput{Node: p.node.Name, Mode: BootLocal}).Get(ctx, nil); err != nil {
		return ProvisionResult{}, fmt.Errorf("set final boot: %w", err)
	}
	p.setPhase(ctx, PhaseProvisioned, fmt.Sprintf("runs %s@%s", p.in.Image, p.in.Version))
	res := ProvisionResult{
		Node: p.node.Name, Rack: p.node.Rack, Image: p.in.Image, Version: p.in.Version,
		Digest: checkIn.Digest, BootAttempts: p.progress.BootAttempt, CheckedInAt: checkIn.At,
	}
	if export.TorrentURL != "" {
		res.Torrent = Torrent{Node: p.node.Name, Run: run} // Export published it under this run
	}
	return res, nil
}

// end undoes a failed run and returns the permits still held.
func (p *provision) end(ctx workflow.Context, err error) {
	if err != nil {
		p.fail(ctx, err)
	}
	p.releasePermits(ctx)
}

// boot power-cycles the node and waits for its check-in, escalating to a
// hard power cycle on each timeout, up to BootAttempts boots.
func (p *provision) boot(ctx workflow.Context, run string) (CheckIn, error) {
	ch := workflow.GetSignalChannel(ctx, SignalCheckIn)
	for attempt := 1; attempt <= p.in.BootAttempts; attempt++ {
		p.progress.BootAttempt = attempt
		how := "power cycle"
		if attempt > 1 {
			how = "hard power cycle (off, on)"
		}
		err := p.withPermit(ctx, PermitPowerOn, func() error {
			p.setPhase(ctx, PhasePowerCycle, fmt.Sprintf("boot %d/%d: %s", attempt, p.in.BootAttempts, how))
			return workflow.ExecuteActivity(p.rackOpts(ctx, powerOpts, fmt.Sprintf("%s %s into PXE", how, p.node.Name)),
				ActivityPowerCycle, PowerCycleInput{Node: p.node.Name, Hard: attempt > 1}).Get(ctx, nil)
		})
		if err != nil {
			return CheckIn{}, fmt.Errorf("power cycle: %w", err)
		}
		if attempt == 1 {
			p.undo = append(p.undo, undoStep{"reboot to local disk", ActivityPowerCycle, PowerCycleInput{Node: p.node.Name, Hard: true, Disk: true}})
		}
		p.setPhase(ctx, PhaseAwaiting, fmt.Sprintf("boot %d/%d: awaiting check-in (≤ %s)", attempt, p.in.BootAttempts, p.in.CheckInTimeout))
		if c, ok := p.awaitCheckIn(ctx, ch, run, attempt); ok {
			return c, nil
		}
		workflow.GetLogger(ctx).Warn("no check-in before the timeout", "node", p.node.Name, "boot", attempt, "timeout", p.in.CheckInTimeout)
	}
	return CheckIn{}, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("node %s did not check in within %s after %d boots", p.node.Name, p.in.CheckInTimeout, p.in.BootAttempts),
		ErrCheckInTimeout, nil)
}

// awaitCheckIn waits for a check-in of this node and run until the timer
// fires; check-ins of other nodes or runs are counted and ignored.
func (p *provision) awaitCheckIn(ctx workflow.Context, ch workflow.ReceiveChannel, run string, attempt int) (CheckIn, bool) {
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timer := workflow.NewTimerWithOptions(timerCtx, p.in.CheckInTimeout, workflow.TimerOptions{
		Summary: fmt.Sprintf("check-in of %s, boot %d", p.node.Name, attempt),
	})
	for {
		var c CheckIn
		fired := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ch, func(r workflow.ReceiveChannel, _ bool) { r.Receive(ctx, &c) })
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.Select(ctx)
		if fired {
			return CheckIn{}, false
		}
		if c.Node != p.node.Name || c.Run != run {
			p.progress.RejectedCheckIns++
			workflow.GetLogger(ctx).Warn("check-in rejected: not this node's provisioning",
				"node", p.node.Name, "from_node", c.Node, "from_run", c.Run)
			continue
		}
		return c, true
	}
}

// fail undoes the completed steps in reverse, on a context that survives
// cancellation, and records the failure.
func (p *provision) fail(ctx workflow.Context, cause error) {
	p.progress.Error = cause.Error()
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	for i := len(p.undo) - 1; i >= 0; i-- {
		u := p.undo[i]
		p.setPhase(dctx, PhaseUndoing, u.name)
		if err := workflow.ExecuteActivity(p.rackOpts(dctx, undoOpts, u.name+" of "+p.node.Name), u.activity, u.input).Get(dctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("undo failed", "node", p.node.Name, "step", u.name, "error", err)
		}
	}
	p.setPhase(dctx, PhaseFailed, firstLine(cause.Error()))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// IsApplicationError reports whether err carries an ApplicationError of the
// given type (one of the Err* constants).
func IsApplicationError(err error, typ string) bool {
	var app *temporal.ApplicationError
	for err != nil {
		if !errors.As(err, &app) {
			return false
		}
		if app.Type() == typ {
			return true
		}
		err = app.Unwrap()
	}
	return false
}

// CheckInTimeoutOrDefault is the check-in timeout Provision will use.
func (in ProvisionInput) CheckInTimeoutOrDefault() time.Duration {
	return in.withDefaults().CheckInTimeout
}
