package workflows

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// USB-identify (Purdue "Steele", LISA '08): new machines PXE-boot into an
// identify profile with a pool address and wait; an operator walks the rack
// and inserts a thumb drive into each machine in turn; the agent of the
// machine that sees the drive asks for its identity, and gets the next
// position of the address plan (production name and IP) in rack order.
// Dead-on-arrival positions are skipped; a wrong machine is undone. One
// Identify workflow runs per scope (a rack or a subnet), so several scopes
// are identified in parallel.

// IdentifyWorkflowID is the ID of the Identify workflow of scope:
// "identify/<scope>". One identification runs per scope at a time.
func IdentifyWorkflowID(scope string) string { return "identify/" + scope }

// Update, signal and query names of Identify.
const (
	// UpdateIdentify assigns the next position to a MAC: payload
	// IdentifyRequest, result Assignment. Rejected (nothing recorded in
	// the history) with an ApplicationError of type ErrInvalidMAC,
	// ErrMACAssigned (its details hold the MAC's Assignment: a node that
	// asks again gets the same answer), ErrPlanExhausted or
	// ErrIdentifyClosed.
	UpdateIdentify = "identify"
	// UpdateIdentifyConfirm records that the node applied its assignment
	// (hostname and production address): payload IdentifyRequest, sent by
	// the node from its production address, result the confirmed
	// Assignment. Rejected with ErrInvalidMAC or ErrNotAssigned (the MAC
	// has no position, e.g. it was undone). Confirming twice is harmless.
	UpdateIdentifyConfirm = "confirm"
	// SignalIdentifySkip marks the next position dead on arrival: the next
	// identification gets the position after it. Payload SkipRequest.
	SignalIdentifySkip = "skip"
	// SignalIdentifyUndo takes back the last action (an assignment to the
	// wrong machine, or a skip): its position is the next one again.
	// Payload UndoRequest.
	SignalIdentifyUndo = "undo"
	// SignalIdentifyFinish ends the identification now (no payload); the
	// result lists the assignments.
	SignalIdentifyFinish = "finish"
	// QueryIdentifyStatus answers an IdentifyStatus.
	QueryIdentifyStatus = "status"
)

// Error types of Identify, for callers to match on.
const (
	ErrInvalidPlan    = "InvalidPlan"    // the input's scope or plan is invalid (the workflow fails)
	ErrInvalidMAC     = "InvalidMAC"     // the update's MAC is not a 6-byte Ethernet address
	ErrMACAssigned    = "MACAssigned"    // the MAC already has a position: details hold its Assignment
	ErrPlanExhausted  = "PlanExhausted"  // every position of the plan is assigned or skipped
	ErrIdentifyClosed = "IdentifyClosed" // the identification is ending (finish signal or grace over)
	ErrNotAssigned    = "NotAssigned"    // a confirmation for a MAC that has no position
)

// Limits and defaults of Identify.
const (
	// DefaultIdentifyGrace is how long Identify keeps running once every
	// position is filled, so that the last node can ask again (its answer
	// may have been lost) and the operator can still undo.
	DefaultIdentifyGrace = 10 * time.Minute
	// MaxIdentifyPlan bounds the positions of one plan.
	MaxIdentifyPlan = 4096
	// IdentifyUndoDepth is how many past actions can be undone.
	IdentifyUndoDepth = 32
)

// identifyUpdatesPerRun bounds the updates one run accepts before it
// continues as new (the server allows 2,000 per run). A variable for tests.
var identifyUpdatesPerRun = 500

// PlanEntry is one position of an address plan: the rack slot and the
// production name and address the machine in it gets.
type PlanEntry struct {
	Slot int    // rack position, 1-based; 0 → the previous entry's slot + 1 (the first: FirstSlot)
	Name string // hostname, [a-z0-9][a-z0-9._-]* (max 63)
	IP   string // production address, "10.1.0.5" or with its prefix "10.1.0.5/24"
}

// IdentifyInput starts the identification of a scope.
type IdentifyInput struct {
	// Scope is the rack or subnet label, [a-z0-9][a-z0-9._-]* (max 63).
	Scope string
	// Rack, when set, is the inventory rack being identified: while the
	// identification runs, the rack's unknown MACs boot the identify
	// agent (its discovery profile), and each confirmed machine is
	// recorded in the inventory as a node of the rack (MAC → name, slot,
	// production address; no BMC unless it was there).
	Rack string `json:",omitempty"`
	// FirstSlot is the slot of the first plan entry when it has none
	// (default 1); when both are set they must agree.
	FirstSlot int
	// Plan lists the positions in rack order (slots strictly increasing).
	Plan []PlanEntry
	// Grace is how long Identify waits, once every position is filled,
	// for a retry of the last node or an undo before it ends (default
	// DefaultIdentifyGrace).
	Grace time.Duration
	// State is set by continue-as-new only: the state of the run before.
	State *IdentifyState `json:",omitempty"`
}

// IdentifyRequest is the payload of the identify update: the MAC of the
// node that saw the USB drive, and where its request came from (its pool
// address; informational).
type IdentifyRequest struct {
	MAC  string
	From string `json:",omitempty"`
}

// SkipRequest is the payload of the skip signal. Slot, when set, must be
// the next slot: a skip sent twice (or after someone else's) is ignored
// instead of skipping a second position.
type SkipRequest struct{ Slot int }

// UndoRequest is the payload of the undo signal. Slot, when set, must be
// the slot of the last action; otherwise the undo is ignored.
type UndoRequest struct{ Slot int }

// Assignment is one identified machine.
type Assignment struct {
	Slot int
	Name string
	IP   string
	MAC  string    // canonical, lower-case, colon-separated
	At   time.Time // workflow time of the identification
	From string    `json:",omitempty"` // the request's source address (pool address)
	// Confirmed is the workflow time of the node's confirmation that it
	// applied the assignment (zero until then); ConfirmedFrom is the
	// confirmation's source address, normally the production IP.
	Confirmed     time.Time `json:",omitempty"`
	ConfirmedFrom string    `json:",omitempty"`
	// Recorded: the inventory holds the machine as a node (IdentifyInput.
	// Rack set); RecordError says why recording it failed (e.g. its MAC
	// is another node's), the assignment itself stands.
	Recorded    bool   `json:",omitempty"`
	RecordError string `json:",omitempty"`
}

// IdentifyAction is one entry of the undo history.
type IdentifyAction struct {
	Kind string // "assign" or "skip"
	Slot int
	MAC  string `json:",omitempty"` // of an assignment
}

// IdentifyState is the whole state of an identification; it is carried
// across continue-as-new. Every position before Next is assigned or
// skipped, every position from Next on is free.
type IdentifyState struct {
	Scope       string
	Rack        string      `json:",omitempty"`
	Plan        []PlanEntry // normalized: every Slot set
	Grace       time.Duration
	Next        int              // index into Plan of the next position
	Assignments []Assignment     // in slot order
	Skipped     []int            // slots, in order
	History     []IdentifyAction // undo history, oldest first, at most IdentifyUndoDepth
	FullSince   time.Time        // when the last position was filled (zero while one is free)
	Updates     int              // identifications accepted over all runs
	Runs        int              // runs before this one
}

// IdentifyStatus is the answer of the status query.
type IdentifyStatus struct {
	Scope       string
	Next        *PlanEntry // nil when every position is filled
	Assignments []Assignment
	Skipped     []int
	Confirmed   int // assignments the nodes confirmed
	Remaining   int // free positions (Next included)
	Total       int
	Undoable    int             // actions undo can still take back
	LastAction  *IdentifyAction `json:",omitempty"`
	Closing     bool            // finishing: no more identifications
}

// IdentifyResult is what an identification ends with.
type IdentifyResult struct {
	Scope       string
	Assignments []Assignment
	Skipped     []int
	Unassigned  []PlanEntry // positions never reached
	Ended       string      // "finished" (signal) or "plan complete"
}

var identifyNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

func validIdentifyName(s string) bool { return len(s) <= 63 && identifyNameRE.MatchString(s) }

// ValidateIdentifyInput checks in and returns it with every plan slot set
// and Grace defaulted. Errors are non-retryable ApplicationErrors of type
// ErrInvalidPlan naming the offending entry. Callers may run it before
// starting the workflow; Identify runs it again.
func ValidateIdentifyInput(in IdentifyInput) (IdentifyInput, error) {
	bad := func(format string, a ...any) (IdentifyInput, error) {
		return in, temporal.NewNonRetryableApplicationError(fmt.Sprintf("identify %s: ", in.Scope)+fmt.Sprintf(format, a...), ErrInvalidPlan, nil)
	}
	if !validIdentifyName(in.Scope) {
		return bad("invalid scope %q (want [a-z0-9][a-z0-9._-]*, max 63)", in.Scope)
	}
	if in.Rack != "" && !validIdentifyName(in.Rack) {
		return bad("invalid rack %q (want [a-z0-9][a-z0-9._-]*, max 63)", in.Rack)
	}
	if in.FirstSlot < 0 {
		return bad("first slot %d is negative", in.FirstSlot)
	}
	if in.Grace < 0 {
		return bad("grace %s is negative", in.Grace)
	}
	if in.Grace == 0 {
		in.Grace = DefaultIdentifyGrace
	}
	switch n := len(in.Plan); {
	case n == 0:
		return bad("the plan is empty")
	case n > MaxIdentifyPlan:
		return bad("the plan has %d positions (max %d)", n, MaxIdentifyPlan)
	}
	first := in.FirstSlot
	if first == 0 {
		first = 1
	}
	if s := in.Plan[0].Slot; s != 0 && in.FirstSlot != 0 && s != in.FirstSlot {
		return bad("first slot %d but the plan's first entry is slot %d", in.FirstSlot, s)
	}
	plan := make([]PlanEntry, len(in.Plan))
	names := make(map[string]int, len(plan))
	addrs := make(map[netip.Addr]int, len(plan))
	for i, e := range in.Plan {
		switch {
		case e.Slot == 0 && i == 0:
			e.Slot = first
		case e.Slot == 0:
			e.Slot = plan[i-1].Slot + 1
		case e.Slot < 0:
			return bad("entry %d: slot %d is negative", i+1, e.Slot)
		case i > 0 && e.Slot <= plan[i-1].Slot:
			return bad("entry %d: slot %d does not follow slot %d (rack order)", i+1, e.Slot, plan[i-1].Slot)
		}
		if !validIdentifyName(e.Name) {
			return bad("entry %d (slot %d): invalid name %q (want [a-z0-9][a-z0-9._-]*, max 63)", i+1, e.Slot, e.Name)
		}
		addr, err := parsePlanIP(e.IP)
		if err != nil {
			return bad("entry %d (slot %d): %v", i+1, e.Slot, err)
		}
		if j, dup := names[e.Name]; dup {
			return bad("entry %d (slot %d): name %s is also slot %d", i+1, e.Slot, e.Name, plan[j].Slot)
		}
		if j, dup := addrs[addr]; dup {
			return bad("entry %d (slot %d): address %s is also slot %d", i+1, e.Slot, addr, plan[j].Slot)
		}
		names[e.Name], addrs[addr] = i, i
		plan[i] = e
	}
	in.Plan = plan
	return in, nil
}

// parsePlanIP accepts an address with or without a prefix length.
func parsePlanIP(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, fmt.Errorf("missing address")
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("invalid address %q", s)
	}
	return a, nil
}

// CanonicalMAC parses a 6-byte Ethernet MAC in any form net.ParseMAC
// accepts and returns it lower-case and colon-separated.
func CanonicalMAC(s string) (string, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("invalid MAC address %q (want a 6-byte Ethernet address)", s)
	}
	return hw.String(), nil
}

// Identify runs the identification of one scope (workflow ID
// "identify/<scope>"). Each identify update assigns the next free position
// of the plan to the asking MAC and returns it; skip and undo signals move
// through the plan; the status query shows where it stands and the Web UI
// details show the rack filling up. It ends with the assignments on the
// finish signal, or DefaultIdentifyGrace (IdentifyInput.Grace) after the
// last position was filled, and continues as new before its history or
// update count grows too large.
//
// The update handler never blocks, so updates never pile up against the
// server's limit of 10 in flight, and it repeats the validator's checks:
// several updates validated in the same workflow task run one after the
// other.
func Identify(ctx workflow.Context, in IdentifyInput) (IdentifyResult, error) {
	continued := false // the next run keeps the rack's discovery profile
	w, err := newIdentify(in)
	if err != nil {
		return IdentifyResult{}, err
	}
	// Histories recorded before the rack steps replay without them.
	w.rackSteps = workflow.GetVersion(ctx, identifyRackStepsChange, workflow.DefaultVersion, 1) >= 1 && w.st.Rack != ""
	if w.rackSteps {
		if err := w.discoveryBoot(ctx, false); err != nil {
			return IdentifyResult{}, err
		}
		defer func() {
			if !continued {
				dctx, cancel := workflow.NewDisconnectedContext(ctx)
				defer cancel()
				if err := w.discoveryBoot(dctx, true); err != nil {
					workflow.GetLogger(ctx).Error("removing the discovery profile failed", "rack", w.st.Rack, "err", err)
				}
			}
		}()
	}
	if err := workflow.SetQueryHandler(ctx, QueryIdentifyStatus, func() (IdentifyStatus, error) { return w.status(), nil }); err != nil {
		return IdentifyResult{}, err
	}
	skip := workflow.GetSignalChannel(ctx, SignalIdentifySkip)
	undo := workflow.GetSignalChannel(ctx, SignalIdentifyUndo)
	finish := workflow.GetSignalChannel(ctx, SignalIdentifyFinish)
	signals := func() {
		// Undo before skip: "that one was wrong, and the position is
		// dead" sent in quick succession.
		for {
			var r UndoRequest
			if !undo.ReceiveAsync(&r) {
				break
			}
			w.undo(ctx, r)
		}
		for {
			var r SkipRequest
			if !skip.ReceiveAsync(&r) {
				break
			}
			w.skip(ctx, r)
		}
		if finish.ReceiveAsync(nil) {
			w.finishing = true
		}
	}
	// The handler takes the signals sent before its update first: an undo
	// or skip and the next identification can reach the same workflow task,
	// and the handler may run before the main loop.
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateIdentify,
		func(ctx workflow.Context, r IdentifyRequest) (Assignment, error) {
			signals()
			return w.assign(ctx, r)
		},
		workflow.UpdateHandlerOptions{Validator: w.validate},
	); err != nil {
		return IdentifyResult{}, err
	}
	// Registering a handler adds no command: histories recorded before
	// confirmations replay unchanged.
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateIdentifyConfirm,
		func(ctx workflow.Context, r IdentifyRequest) (Assignment, error) { return w.confirm(ctx, r) },
		workflow.UpdateHandlerOptions{Validator: w.validateConfirm},
	); err != nil {
		return IdentifyResult{}, err
	}
	w.render(ctx)
	ended := "finished"
	for {
		signals()
		if w.finishing {
			break
		}
		now := workflow.Now(ctx)
		if w.full() {
			if w.st.FullSince.IsZero() {
				w.st.FullSince = now
			}
			if !now.Before(w.st.FullSince.Add(w.st.Grace)) {
				ended = "plan complete"
				break
			}
		} else {
			w.st.FullSince = time.Time{}
		}
		if w.continueAsNewDue(ctx) {
			// Let accepted updates finish and take the signals of this
			// task before the state moves to the next run.
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return w.result("cancelled"), err
			}
			signals()
			if !w.finishing {
				next := w.st
				next.Runs++
				workflow.GetLogger(ctx).Info("identify continues as new", "scope", w.st.Scope, "updates", w.runUpdates)
				continued = true
				return IdentifyResult{}, workflow.NewContinueAsNewError(ctx, Identify, IdentifyInput{Scope: w.st.Scope, Rack: w.st.Rack, State: &next})
			}
			break
		}
		seen := w.changes
		wake := func() bool {
			return w.changes != seen || skip.Len() > 0 || undo.Len() > 0 || finish.Len() > 0 || w.continueAsNewDue(ctx)
		}
		var err error
		if w.full() {
			left := w.st.FullSince.Add(w.st.Grace).Sub(now)
			_, err = workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
				Timeout:      left,
				TimerOptions: workflow.TimerOptions{Summary: fmt.Sprintf("every position of %s filled: end in %s unless undone", w.st.Scope, left)},
			}, wake)
		} else {
			err = workflow.Await(ctx, wake)
		}
		if err != nil { // cancelled
			return w.result("cancelled"), err
		}
	}
	// No identification from here on; those already accepted finish.
	w.closing = true
	w.render(ctx)
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return w.result("cancelled"), err
	}
	res := w.result(ended)
	w.render(ctx)
	return res, nil
}

type identify struct {
	st         IdentifyState
	rackSteps  bool // discovery profile and inventory records (versioned, Rack set)
	finishing  bool // finish signal received
	closing    bool // no more identifications
	changes    int  // bumped on every state change, to wake the main loop
	runUpdates int  // identifications accepted in this run
}

func newIdentify(in IdentifyInput) (*identify, error) {
	if in.State != nil {
		st := *in.State
		if !validIdentifyName(st.Scope) || len(st.Plan) == 0 || st.Next < 0 || st.Next > len(st.Plan) {
			return nil, temporal.NewNonRetryableApplicationError("identify: invalid carried state", ErrInvalidPlan, nil)
		}
		return &identify{st: st}, nil
	}
	in, err := ValidateIdentifyInput(in)
	if err != nil {
		return nil, err
	}
	return &identify{st: IdentifyState{Scope: in.Scope, Rack: in.Rack, Plan: in.Plan, Grace: in.Grace}}, nil
}

func (w *identify) full() bool { return w.st.Next >= len(w.st.Plan) }

func (w *identify) continueAsNewDue(ctx workflow.Context) bool {
	return workflow.GetInfo(ctx).GetContinueAsNewSuggested() || w.runUpdates >= identifyUpdatesPerRun
}

func (w *identify) byMAC(mac string) (Assignment, bool) {
	for _, a := range w.st.Assignments {
		if a.MAC == mac {
			return a, true
		}
	}
	return Assignment{}, false
}

// validate refuses an identification without touching state or history.
func (w *identify) validate(r IdentifyRequest) error {
	mac, err := CanonicalMAC(r.MAC)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidMAC, nil)
	}
	if a, ok := w.byMAC(mac); ok {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s is already slot %d (%s, %s)", mac, a.Slot, a.Name, a.IP), ErrMACAssigned, nil, a)
	}
	if w.closing || w.finishing {
		return temporal.NewNonRetryableApplicationError("identification of "+w.st.Scope+" is ending", ErrIdentifyClosed, nil)
	}
	if w.full() {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("every position of %s is assigned or skipped", w.st.Scope), ErrPlanExhausted, nil)
	}
	return nil
}

// assign gives the next position to r.MAC. It repeats the validator's
// checks (another update of the same task may have run since): a MAC that
// got a position in the meantime gets that position again.
func (w *identify) assign(ctx workflow.Context, r IdentifyRequest) (Assignment, error) {
	mac, err := CanonicalMAC(r.MAC)
	if err != nil {
		return Assignment{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidMAC, nil)
	}
	if a, ok := w.byMAC(mac); ok {
		return a, nil
	}
	if err := w.validate(r); err != nil {
		return Assignment{}, err
	}
	e := w.st.Plan[w.st.Next]
	a := Assignment{Slot: e.Slot, Name: e.Name, IP: e.IP, MAC: mac, At: workflow.Now(ctx), From: r.From}
	w.st.Assignments = append(w.st.Assignments, a)
	w.push(IdentifyAction{Kind: "assign", Slot: e.Slot, MAC: mac})
	w.st.Next++
	w.st.Updates++
	w.runUpdates++
	workflow.GetLogger(ctx).Info("identified", "scope", w.st.Scope, "slot", a.Slot, "name", a.Name, "ip", a.IP, "mac", mac, "from", r.From)
	w.changed(ctx)
	return a, nil
}

// validateConfirm refuses a confirmation for a MAC without a position.
func (w *identify) validateConfirm(r IdentifyRequest) error {
	mac, err := CanonicalMAC(r.MAC)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidMAC, nil)
	}
	if _, ok := w.byMAC(mac); !ok {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s has no position in %s (undone, or never identified)", mac, w.st.Scope), ErrNotAssigned, nil)
	}
	return nil
}

// confirm records the node's confirmation of its assignment; a repeated
// confirmation keeps the first one's time and address.
func (w *identify) confirm(ctx workflow.Context, r IdentifyRequest) (Assignment, error) {
	if err := w.validateConfirm(r); err != nil {
		return Assignment{}, err
	}
	mac, _ := CanonicalMAC(r.MAC)
	at := func() *Assignment {
		i := slices.IndexFunc(w.st.Assignments, func(a Assignment) bool { return a.MAC == mac })
		if i < 0 {
			return nil
		}
		return &w.st.Assignments[i]
	}
	a := at()
	if a.Confirmed.IsZero() {
		a.Confirmed, a.ConfirmedFrom = workflow.Now(ctx), r.From
		workflow.GetLogger(ctx).Info("identity confirmed", "scope", w.st.Scope, "slot", a.Slot, "name", a.Name, "mac", mac, "from", r.From)
		w.changed(ctx)
	}
	if !w.rackSteps || a.Recorded {
		return *a, nil
	}
	// Record MAC → node in the inventory. The handler waits for the
	// activity; the state may change meanwhile (an undo), so the
	// assignment is looked up again afterwards.
	snapshot := *a
	recErr := w.record(ctx, snapshot)
	if a = at(); a == nil || a.Slot != snapshot.Slot {
		return snapshot, nil
	}
	if recErr != nil {
		a.RecordError = recErr.Error()
		workflow.GetLogger(ctx).Warn("identified machine not recorded in the inventory", "scope", w.st.Scope, "name", a.Name, "mac", mac, "err", recErr)
	} else {
		a.Recorded, a.RecordError = true, ""
	}
	w.changed(ctx)
	return *a, nil
}

// identifyRackStepsChange is the GetVersion change ID of the discovery
// profile and inventory records (IdentifyInput.Rack).
const identifyRackStepsChange = "identify-rack-steps"

// rackActivity runs an activity of the identified rack on its queue.
func (w *identify) rackActivity(ctx workflow.Context, summary, name string, in, out any) error {
	o := shortOpts
	o.TaskQueue, o.Summary = RackTaskQueue(w.st.Rack), summary
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), name, in).Get(ctx, out)
}

// discoveryBoot writes (or removes) the rack's discovery profile: the
// identify agent of this scope for the rack's unknown MACs.
func (w *identify) discoveryBoot(ctx workflow.Context, remove bool) error {
	summary := "discovery profile of rack " + w.st.Rack + ": identify " + w.st.Scope
	if remove {
		summary = "remove the discovery profile of rack " + w.st.Rack
	}
	if err := w.rackActivity(ctx, summary, ActivitySetDiscoveryBoot, DiscoveryBootInput{Rack: w.st.Rack, Scope: w.st.Scope, Remove: remove}, nil); err != nil {
		return fmt.Errorf("identify %s: %s: %w", w.st.Scope, summary, err)
	}
	return nil
}

// record adds the machine of a to the inventory as a node of the rack.
func (w *identify) record(ctx workflow.Context, a Assignment) error {
	var res RecordIdentifiedResult
	if err := w.rackActivity(ctx, fmt.Sprintf("record %s (%s) as %s in the inventory", a.MAC, a.IP, a.Name),
		ActivityRecordIdentified, RecordIdentifiedInput{Rack: w.st.Rack, Assignment: a}, &res); err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return errors.New(app.Error())
		}
		return err
	}
	workflow.GetLogger(ctx).Info("identified machine recorded in the inventory", "scope", w.st.Scope, "node", res.Node, "changed", res.Changed, "no_bmc", res.NoBMC)
	return nil
}

func (w *identify) skip(ctx workflow.Context, r SkipRequest) {
	log := workflow.GetLogger(ctx)
	switch {
	case w.full():
		log.Warn("skip ignored: every position is filled", "scope", w.st.Scope)
		return
	case r.Slot != 0 && r.Slot != w.st.Plan[w.st.Next].Slot:
		log.Warn("skip ignored: not the next slot", "scope", w.st.Scope, "asked", r.Slot, "next", w.st.Plan[w.st.Next].Slot)
		return
	}
	slot := w.st.Plan[w.st.Next].Slot
	w.st.Skipped = append(w.st.Skipped, slot)
	w.push(IdentifyAction{Kind: "skip", Slot: slot})
	w.st.Next++
	log.Info("slot skipped", "scope", w.st.Scope, "slot", slot)
	w.changed(ctx)
}

func (w *identify) undo(ctx workflow.Context, r UndoRequest) {
	log := workflow.GetLogger(ctx)
	n := len(w.st.History)
	switch {
	case n == 0:
		log.Warn("undo ignored: nothing to undo", "scope", w.st.Scope)
		return
	case r.Slot != 0 && r.Slot != w.st.History[n-1].Slot:
		log.Warn("undo ignored: not the last action's slot", "scope", w.st.Scope, "asked", r.Slot, "last", w.st.History[n-1].Slot)
		return
	}
	last := w.st.History[n-1]
	w.st.History = w.st.History[:n-1]
	switch last.Kind {
	case "assign":
		w.st.Assignments = w.st.Assignments[:len(w.st.Assignments)-1]
	case "skip":
		w.st.Skipped = w.st.Skipped[:len(w.st.Skipped)-1]
	}
	w.st.Next--
	log.Info("undone", "scope", w.st.Scope, "action", last.Kind, "slot", last.Slot, "mac", last.MAC)
	w.changed(ctx)
}

// push records an action in the bounded undo history.
func (w *identify) push(a IdentifyAction) {
	w.st.History = append(w.st.History, a)
	if over := len(w.st.History) - IdentifyUndoDepth; over > 0 {
		w.st.History = append([]IdentifyAction(nil), w.st.History[over:]...)
	}
}

func (w *identify) changed(ctx workflow.Context) {
	w.changes++
	w.render(ctx)
}

func (w *identify) status() IdentifyStatus {
	s := IdentifyStatus{
		Scope:       w.st.Scope,
		Assignments: append([]Assignment{}, w.st.Assignments...),
		Skipped:     append([]int{}, w.st.Skipped...),
		Remaining:   len(w.st.Plan) - w.st.Next,
		Total:       len(w.st.Plan),
		Undoable:    len(w.st.History),
		Closing:     w.closing,
	}
	for _, a := range w.st.Assignments {
		if !a.Confirmed.IsZero() {
			s.Confirmed++
		}
	}
	if !w.full() {
		e := w.st.Plan[w.st.Next]
		s.Next = &e
	}
	if n := len(w.st.History); n > 0 {
		a := w.st.History[n-1]
		s.LastAction = &a
	}
	return s
}

func (w *identify) result(ended string) IdentifyResult {
	return IdentifyResult{
		Scope:       w.st.Scope,
		Assignments: append([]Assignment{}, w.st.Assignments...),
		Skipped:     append([]int{}, w.st.Skipped...),
		Unassigned:  append([]PlanEntry{}, w.st.Plan[w.st.Next:]...),
		Ended:       ended,
	}
}

// identifyTableRows bounds the rows of the details table: the positions
// around the next one.
const identifyTableRows = 60

// render sets the Web UI details: a summary line and the rack as a table.
func (w *identify) render(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, w.details())
}

func (w *identify) details() string {
	var b strings.Builder
	done := w.st.Next
	fmt.Fprintf(&b, "**identify %s** — %d/%d positions done (%d assigned, %d skipped)", w.st.Scope,
		done, len(w.st.Plan), len(w.st.Assignments), len(w.st.Skipped))
	switch {
	case w.closing:
		b.WriteString(" — ended")
	case w.full():
		b.WriteString(" — every position filled")
	default:
		e := w.st.Plan[w.st.Next]
		fmt.Fprintf(&b, " — next: slot %d → %s (%s)", e.Slot, e.Name, e.IP)
	}
	b.WriteString("\n\n| slot | name | IP | state | MAC | at |\n|---:|---|---|---|---|---|\n")
	lo := max(0, w.st.Next-identifyTableRows/2)
	hi := min(len(w.st.Plan), lo+identifyTableRows)
	lo = max(0, hi-identifyTableRows)
	if lo > 0 {
		fmt.Fprintf(&b, "| … | %d earlier positions | | | | |\n", lo)
	}
	ai, si := 0, 0 // walk the sorted assignments and skips beside the plan
	for i := lo; i < hi; i++ {
		e := w.st.Plan[i]
		state, mac, at := "waiting", "", ""
		if i < w.st.Next {
			for ai < len(w.st.Assignments) && w.st.Assignments[ai].Slot < e.Slot {
				ai++
			}
			for si < len(w.st.Skipped) && w.st.Skipped[si] < e.Slot {
				si++
			}
			if ai < len(w.st.Assignments) && w.st.Assignments[ai].Slot == e.Slot {
				a := w.st.Assignments[ai]
				state, mac, at = "✅ assigned", "`"+a.MAC+"`", a.At.UTC().Format("15:04:05")
				switch {
				case a.RecordError != "":
					state = "⚠ confirmed, not in the inventory"
				case a.Recorded:
					state = "✅ confirmed, in the inventory"
				case !a.Confirmed.IsZero():
					state = "✅ confirmed"
				}
			} else if si < len(w.st.Skipped) && w.st.Skipped[si] == e.Slot {
				state = "⏭ skipped"
			}
		} else if i == w.st.Next && !w.closing {
			state = "▶ **next**"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", e.Slot, e.Name, e.IP, state, mac, at)
	}
	if hi < len(w.st.Plan) {
		fmt.Fprintf(&b, "| … | %d later positions | | | | |\n", len(w.st.Plan)-hi)
	}
	return b.String()
}
