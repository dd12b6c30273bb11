package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
)

// PermitKind is what a rack permit allows.
type PermitKind string

// Permit kinds, one limit each (inventory racks[].limits).
const (
	PermitInFlight PermitKind = "in-flight" // a node being provisioned (max in_flight)
	PermitClone    PermitKind = "clone"     // one clone (max clones)
	PermitPowerOn  PermitKind = "power-on"  // one power-on (max power_ons, power_on_interval apart)
)

// RackLimits are a rack's concurrency limits; a zero count means unlimited.
type RackLimits struct {
	Clones          int
	PowerOns        int
	InFlight        int
	PowerOnInterval time.Duration // minimum gap between power-on grants (HOP-SCOTCH staggered boots by 5 s)
	// PermitLease is how long a grant stays valid before the limiter checks
	// that its holder still runs (0: DefaultPermitLease).
	PermitLease time.Duration
}

func (l RackLimits) lease() time.Duration {
	if l.PermitLease > 0 {
		return l.PermitLease
	}
	return DefaultPermitLease
}

func (l RackLimits) max(k PermitKind) int {
	switch k {
	case PermitInFlight:
		return l.InFlight
	case PermitClone:
		return l.Clones
	case PermitPowerOn:
		return l.PowerOns
	}
	return 0
}

// RackLimiterWorkflowID is the ID of rack's limiter: "limits/<rack>".
func RackLimiterWorkflowID(rack string) string { return "limits/" + rack }

// Signal names of the permit protocol.
const (
	SignalAcquire = "acquire" // holder → limiter, payload PermitRequest
	SignalRelease = "release" // holder → limiter, payload PermitRelease
	SignalPermit  = "permit"  // limiter → holder, payload PermitGrant
	SignalLease   = "lease"   // limiter → holder, payload PermitGrant: lease renewed
	QueryPermits  = "permits" // limiter, result LimiterState
)

// PermitRequest asks a rack's limiter for a permit. The limits travel with
// every request so an edited inventory takes effect without a restart.
type PermitRequest struct {
	ID        string // unique per holder run, e.g. "clone-1"
	Kind      PermitKind
	HolderID  string // holder workflow ID
	HolderRun string
	Node      string
	Limits    RackLimits
	At        time.Time
}

// PermitRelease returns a permit (or withdraws a queued request).
type PermitRelease struct {
	ID, HolderID, HolderRun string
}

// PermitGrant tells a holder that request ID is granted.
type PermitGrant struct{ ID string }

// LimiterState is the limiter's state: carried across continue-as-new and
// answered by the "permits" query.
type LimiterState struct {
	Rack        string
	Limits      RackLimits
	Held        []HeldPermit
	Queue       []PermitRequest
	LastPowerOn time.Time
	Grants      int // total grants, for reports
	Reclaimed   int // permits taken back from holders that had ended
}

// HeldPermit is a granted permit and its lease.
type HeldPermit struct {
	PermitRequest
	Granted, LeaseUntil time.Time
}

// DefaultPermitLease is how long a permit stays granted before the limiter
// checks that its holder still runs; a holder that ended (terminated,
// crashed) loses it then.
const DefaultPermitLease = 2 * time.Minute

// limiterIdle ends a limiter with nothing held or queued for this long; the
// next request starts it again.
const limiterIdle = time.Hour

// limiterMaxEvents bounds one limiter run's history before continue-as-new.
const limiterMaxEvents = 8000

// RackLimiter grants a rack's permits (workflow ID "limits/<rack>"): at most
// Limits.max(kind) held per kind, FIFO per kind, power-ons at least
// PowerOnInterval apart, across every rollout and standalone provision. It
// is started by signal-with-start from RequestPermit, grants by signalling
// the holder, reclaims the permits of holders that no longer run when their
// lease is checked, continues as new before its history grows long, and
// ends after an idle hour.
func RackLimiter(ctx workflow.Context, st LimiterState) error {
	l := &limiter{st: st}
	if err := workflow.SetQueryHandler(ctx, QueryPermits, func() (LimiterState, error) { return l.st, nil }); err != nil {
		return err
	}
	acquire := workflow.GetSignalChannel(ctx, SignalAcquire)
	release := workflow.GetSignalChannel(ctx, SignalRelease)
	idleSince := workflow.Now(ctx)
	wasBusy := false
	for {
		l.dispatch(ctx)
		// Idle from the moment nothing is held or queued any more (the
		// last release or reclaim), not from the last busy wake-up.
		busy := len(l.st.Held) > 0 || len(l.st.Queue) > 0
		if busy || wasBusy {
			idleSince = workflow.Now(ctx)
		}
		wasBusy = busy
		info := workflow.GetInfo(ctx)
		if info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > limiterMaxEvents {
			l.drain(acquire, release)
			return workflow.NewContinueAsNewError(ctx, RackLimiter, l.st)
		}
		wake := l.nextWake(workflow.Now(ctx), idleSince)
		timerCtx, cancel := workflow.WithCancel(ctx)
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(acquire, func(c workflow.ReceiveChannel, _ bool) {
			var r PermitRequest
			c.Receive(ctx, &r)
			l.enqueue(r)
		})
		sel.AddReceive(release, func(c workflow.ReceiveChannel, _ bool) {
			var r PermitRelease
			c.Receive(ctx, &r)
			l.release(r)
		})
		fired := false
		if d := wake.Sub(workflow.Now(ctx)); d > 0 {
			sel.AddFuture(workflow.NewTimerWithOptions(timerCtx, d, workflow.TimerOptions{Summary: "next lease check, stagger or idle end"}),
				func(workflow.Future) { fired = true })
		} else {
			fired = true
		}
		if !fired {
			sel.Select(ctx)
		}
		cancel()
		if fired {
			if len(l.st.Held) == 0 && len(l.st.Queue) == 0 && !workflow.Now(ctx).Before(idleSince.Add(limiterIdle)) {
				l.drain(acquire, release)
				if len(l.st.Queue) == 0 {
					return nil
				}
			}
			l.checkLeases(ctx)
		}
	}
}

type limiter struct{ st LimiterState }

func (l *limiter) enqueue(r PermitRequest) {
	l.st.Limits = r.Limits
	for _, h := range l.st.Held {
		if h.ID == r.ID && h.HolderID == r.HolderID && h.HolderRun == r.HolderRun {
			return // duplicate of a granted request
		}
	}
	for _, q := range l.st.Queue {
		if q.ID == r.ID && q.HolderID == r.HolderID && q.HolderRun == r.HolderRun {
			return
		}
	}
	l.st.Queue = append(l.st.Queue, r)
}

func (l *limiter) release(r PermitRelease) {
	match := func(id, holder, run string) bool {
		return id == r.ID && holder == r.HolderID && (r.HolderRun == "" || run == r.HolderRun)
	}
	l.st.Held = slices.DeleteFunc(l.st.Held, func(h HeldPermit) bool { return match(h.ID, h.HolderID, h.HolderRun) })
	l.st.Queue = slices.DeleteFunc(l.st.Queue, func(q PermitRequest) bool { return match(q.ID, q.HolderID, q.HolderRun) })
}

func (l *limiter) held(k PermitKind) int {
	n := 0
	for _, h := range l.st.Held {
		if h.Kind == k {
			n++
		}
	}
	return n
}

// dispatch grants queued requests in FIFO order per kind while capacity and
// the power-on stagger allow, signalling the holders in parallel; a holder
// that cannot be signalled (it ended) loses the grant at once and the queue
// is dispatched again, so the permit goes to the next request.
func (l *limiter) dispatch(ctx workflow.Context) {
	for l.dispatchOnce(ctx) > 0 {
	}
}

// dispatchOnce grants what it can and returns how many of those grants
// were reclaimed because their holders could not be signalled.
func (l *limiter) dispatchOnce(ctx workflow.Context) int {
	now := workflow.Now(ctx)
	var granted []HeldPermit
	for i := 0; i < len(l.st.Queue); {
		r := l.st.Queue[i]
		if max := l.st.Limits.max(r.Kind); max > 0 && l.held(r.Kind) >= max {
			i++
			continue
		}
		if r.Kind == PermitPowerOn && !l.st.LastPowerOn.IsZero() && now.Before(l.st.LastPowerOn.Add(l.st.Limits.PowerOnInterval)) {
			i++
			continue
		}
		l.st.Queue = slices.Delete(l.st.Queue, i, i+1)
		h := HeldPermit{PermitRequest: r, Granted: now, LeaseUntil: now.Add(l.st.Limits.lease())}
		l.st.Held = append(l.st.Held, h)
		granted = append(granted, h)
		l.st.Grants++
		if r.Kind == PermitPowerOn {
			l.st.LastPowerOn = now
		}
	}
	if len(granted) == 0 {
		return 0
	}
	reclaimed := l.signalHolders(ctx, granted, SignalPermit)
	workflow.SetCurrentDetails(ctx, l.details())
	return reclaimed
}

// signalHolders sends sig to every holder at once, drops the permits of
// holders that cannot be reached and returns how many it dropped.
func (l *limiter) signalHolders(ctx workflow.Context, hs []HeldPermit, sig string) int {
	reclaimed := 0
	futures := make([]workflow.Future, len(hs))
	for i, h := range hs {
		futures[i] = workflow.SignalExternalWorkflow(ctx, h.HolderID, h.HolderRun, sig, PermitGrant{ID: h.ID})
	}
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			h := hs[i]
			workflow.GetLogger(ctx).Warn("permit holder no longer runs; permit reclaimed", "holder", h.HolderID, "kind", h.Kind, "error", err)
			l.st.Reclaimed++
			reclaimed++
			l.release(PermitRelease{ID: h.ID, HolderID: h.HolderID, HolderRun: h.HolderRun})
		}
	}
	return reclaimed
}

// checkLeases renews the expired leases whose holders still run (a signal
// to the holder succeeds) and reclaims the others.
func (l *limiter) checkLeases(ctx workflow.Context) {
	now := workflow.Now(ctx)
	var expired []HeldPermit
	for i := range l.st.Held {
		if !now.Before(l.st.Held[i].LeaseUntil) {
			l.st.Held[i].LeaseUntil = now.Add(l.st.Limits.lease())
			expired = append(expired, l.st.Held[i])
		}
	}
	if len(expired) > 0 {
		l.signalHolders(ctx, expired, SignalLease)
		workflow.SetCurrentDetails(ctx, l.details())
	}
}

// nextWake is the earliest lease expiry, stagger end or idle end. A
// stagger end already past is no reason to wake: the queued power-on then
// waits for a release (its kind is at its limit).
func (l *limiter) nextWake(now, idleSince time.Time) time.Time {
	wake := idleSince.Add(limiterIdle)
	for _, h := range l.st.Held {
		if h.LeaseUntil.Before(wake) {
			wake = h.LeaseUntil
		}
	}
	for _, q := range l.st.Queue {
		if q.Kind == PermitPowerOn && !l.st.LastPowerOn.IsZero() {
			if t := l.st.LastPowerOn.Add(l.st.Limits.PowerOnInterval); t.After(now) && t.Before(wake) {
				wake = t
			}
			break
		}
	}
	return wake
}

// drain takes every buffered signal so none is lost across continue-as-new.
func (l *limiter) drain(acquire, release workflow.ReceiveChannel) {
	for {
		var r PermitRequest
		if !acquire.ReceiveAsync(&r) {
			break
		}
		l.enqueue(r)
	}
	for {
		var r PermitRelease
		if !release.ReceiveAsync(&r) {
			break
		}
		l.release(r)
	}
}

func (l *limiter) details() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**rack %s** permits\n\n| kind | held | limit | queued |\n|---|---|---|---|\n", l.st.Rack)
	for _, k := range []PermitKind{PermitInFlight, PermitClone, PermitPowerOn} {
		queued := 0
		for _, q := range l.st.Queue {
			if q.Kind == k {
				queued++
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", k, l.held(k), l.st.Limits.max(k), queued)
	}
	fmt.Fprintf(&b, "\n%d grants, %d reclaimed", l.st.Grants, l.st.Reclaimed)
	return b.String()
}
