package workflows

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
)

// limiterRig drives RackLimiter directly in the SDK test environment: the
// test sends acquire/release signals at workflow times and a mock stands in
// for every holder, recording each grant and lease renewal with the
// workflow time it was sent at. Holders listed in dead cannot be signalled
// (they ended) from the given workflow offset on.
type limiterRig struct {
	t     *testing.T
	env   *testsuite.TestWorkflowEnvironment
	start time.Time
	mu    sync.Mutex
	sent  []holderSignal
	dead  map[string]time.Duration // holder → offset from which signals fail
}

// holderSignal is one signal the limiter sent to a holder.
type holderSignal struct {
	Holder, Signal, ID string
	At                 time.Duration // workflow time since the limiter started
	Failed             bool
}

func newLimiterRig(t *testing.T) *limiterRig {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	r := &limiterRig{t: t, env: s.NewTestWorkflowEnvironment(), dead: map[string]time.Duration{}}
	r.env.RegisterWorkflow(RackLimiter)
	r.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_, holder, run, signal string, arg any) error {
			g, ok := arg.(PermitGrant)
			if !ok || run != "run-"+holder || (signal != SignalPermit && signal != SignalLease) {
				t.Errorf("limiter sent %s %#v to %s run %s", signal, arg, holder, run)
				return nil
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			at := r.env.Now().Sub(r.start)
			from, dead := r.dead[holder]
			s := holderSignal{Holder: holder, Signal: signal, ID: g.ID, At: at, Failed: dead && at >= from}
			r.sent = append(r.sent, s)
			if s.Failed {
				return errors.New("workflow execution already completed")
			}
			return nil
		})
	return r
}

// request is holder's first request of kind under limits.
func request(holder string, kind PermitKind, limits RackLimits) PermitRequest {
	return PermitRequest{ID: string(kind) + "-1", Kind: kind, HolderID: holder, HolderRun: "run-" + holder, Node: holder, Limits: limits}
}

// acquire sends r at workflow offset at.
func (r *limiterRig) acquire(at time.Duration, req PermitRequest) {
	r.env.RegisterDelayedCallback(func() { r.env.SignalWorkflow(SignalAcquire, req) }, at)
}

// release returns (or withdraws) req at workflow offset at.
func (r *limiterRig) release(at time.Duration, req PermitRequest) {
	rel := PermitRelease{ID: req.ID, HolderID: req.HolderID, HolderRun: req.HolderRun}
	r.env.RegisterDelayedCallback(func() { r.env.SignalWorkflow(SignalRelease, rel) }, at)
}

// query answers the "permits" query at workflow offset at into *st.
func (r *limiterRig) query(at time.Duration, st *LimiterState) {
	r.env.RegisterDelayedCallback(func() {
		v, err := r.env.QueryWorkflow(QueryPermits)
		if err != nil {
			r.t.Errorf("query %s at %s: %v", QueryPermits, at, err)
			return
		}
		if err := v.Get(st); err != nil {
			r.t.Errorf("query %s at %s: %v", QueryPermits, at, err)
		}
	}, at)
}

// run runs the limiter to its idle end and returns how long it ran
// (workflow time).
func (r *limiterRig) run(limits RackLimits) time.Duration {
	r.t.Helper()
	r.start = r.env.Now()
	r.env.ExecuteWorkflow(RackLimiter, LimiterState{Rack: "r01", Limits: limits})
	if !r.env.IsWorkflowCompleted() {
		r.t.Fatal("limiter did not end")
	}
	if err := r.env.GetWorkflowError(); err != nil {
		r.t.Fatalf("limiter ended with %v", err)
	}
	return r.env.Now().Sub(r.start)
}

// signals lists the signals named signal the limiter sent, in order.
func (r *limiterRig) signals(signal string) []holderSignal {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []holderSignal
	for _, s := range r.sent {
		if s.Signal == signal {
			out = append(out, s)
		}
	}
	return out
}

func (r *limiterRig) wantSignals(signal string, want []holderSignal) {
	r.t.Helper()
	got := r.signals(signal)
	if !slices.Equal(got, want) {
		r.t.Errorf("%s signals:\n got %+v\nwant %+v", signal, got, want)
	}
}

func heldIDs(st LimiterState) []string {
	var out []string
	for _, h := range st.Held {
		out = append(out, h.HolderID+"/"+h.ID)
	}
	return out
}

func queuedIDs(st LimiterState) []string {
	var out []string
	for _, q := range st.Queue {
		out = append(out, q.HolderID+"/"+q.ID)
	}
	return out
}

// TestLimiterClonesFIFO: with 2 clone permits and 4 requests, exactly 2 are
// granted until one is released; the others follow in arrival order, each
// as soon as a permit returns.
func TestLimiterClonesFIFO(t *testing.T) {
	r := newLimiterRig(t)
	lim := RackLimits{Clones: 2}
	reqs := map[string]PermitRequest{}
	for i, h := range []string{"a", "b", "c", "d"} {
		reqs[h] = request(h, PermitClone, lim)
		r.acquire(time.Duration(i+1)*time.Second, reqs[h])
	}
	var mid, end LimiterState
	r.query(10*time.Second, &mid)
	r.release(20*time.Second, reqs["a"])
	r.release(30*time.Second, reqs["b"])
	r.release(40*time.Second, reqs["c"])
	r.release(40*time.Second, reqs["d"])
	r.query(50*time.Second, &end)
	ran := r.run(lim)

	r.wantSignals(SignalPermit, []holderSignal{
		{Holder: "a", Signal: SignalPermit, ID: "clone-1", At: time.Second},
		{Holder: "b", Signal: SignalPermit, ID: "clone-1", At: 2 * time.Second},
		{Holder: "c", Signal: SignalPermit, ID: "clone-1", At: 20 * time.Second},
		{Holder: "d", Signal: SignalPermit, ID: "clone-1", At: 30 * time.Second},
	})
	if got, want := heldIDs(mid), []string{"a/clone-1", "b/clone-1"}; !slices.Equal(got, want) {
		t.Errorf("held at 10s = %v, want %v", got, want)
	}
	if got, want := queuedIDs(mid), []string{"c/clone-1", "d/clone-1"}; !slices.Equal(got, want) {
		t.Errorf("queued at 10s = %v, want %v", got, want)
	}
	if mid.Rack != "r01" || mid.Limits != lim || mid.Grants != 2 || mid.Reclaimed != 0 {
		t.Errorf("state at 10s = %+v", mid)
	}
	for _, h := range mid.Held {
		if h.LeaseUntil.Sub(h.Granted) != DefaultPermitLease {
			t.Errorf("%s lease = %s, want the default %s", h.HolderID, h.LeaseUntil.Sub(h.Granted), DefaultPermitLease)
		}
	}
	if len(end.Held) != 0 || len(end.Queue) != 0 || end.Grants != 4 || end.Reclaimed != 0 {
		t.Errorf("state after every release = %+v", end)
	}
	// Idle from the last release at 40 s: it ends an idle hour later.
	if want := 40*time.Second + limiterIdle; ran != want {
		t.Errorf("limiter ran %s, want %s (idle end an hour after the last release)", ran, want)
	}
}

// TestLimiterPowerOnStagger: power-on grants are at least the interval
// apart in workflow time, in request order, even with no count limit. The
// grant times are the limiter's own (its state's Granted, read by query):
// the mock holder runs when the test environment gets to it, so its clock
// may already be past the workflow time the grant was made at.
func TestLimiterPowerOnStagger(t *testing.T) {
	r := newLimiterRig(t)
	lim := RackLimits{PowerOnInterval: 5 * time.Second}
	for i, h := range []string{"a", "b", "c", "d"} {
		req := request(h, PermitPowerOn, lim)
		r.acquire(time.Second+time.Duration(i)*time.Millisecond, req)
		r.release(time.Minute, req)
	}
	var st LimiterState
	r.query(30*time.Second, &st)
	r.run(lim)
	var order []string
	for _, g := range r.signals(SignalPermit) {
		order = append(order, g.Holder)
	}
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(order, want) {
		t.Errorf("grant order %v, want %v", order, want)
	}
	if got, want := heldIDs(st), []string{"a/power-on-1", "b/power-on-1", "c/power-on-1", "d/power-on-1"}; !slices.Equal(got, want) {
		t.Fatalf("held at 30s = %v, want %v", got, want)
	}
	h := st.Held
	for i := 1; i < len(h); i++ {
		if gap := h[i].Granted.Sub(h[i-1].Granted); gap < lim.PowerOnInterval {
			t.Errorf("power-on grants %s and %s are %s apart, want at least %s", h[i-1].HolderID, h[i].HolderID, gap, lim.PowerOnInterval)
		}
	}
	if got, want := h[3].Granted.Sub(h[0].Granted), 3*lim.PowerOnInterval; got != want {
		t.Errorf("first to last grant %s, want %s (one interval after the other)", got, want)
	}
}

// TestLimiterPowerOnCountAfterStagger: a power-on queued behind the count
// limit once the stagger has passed waits for a release (the limiter must
// not spin on a wake-up time already past) and is granted at that release.
func TestLimiterPowerOnCountAfterStagger(t *testing.T) {
	r := newLimiterRig(t)
	lim := RackLimits{PowerOns: 1, PowerOnInterval: 5 * time.Second}
	a, b := request("a", PermitPowerOn, lim), request("b", PermitPowerOn, lim)
	r.acquire(time.Second, a)
	r.acquire(2*time.Second, b)
	var st LimiterState
	r.query(30*time.Second, &st)
	r.release(40*time.Second, a)
	r.release(50*time.Second, b)
	r.run(lim)
	r.wantSignals(SignalPermit, []holderSignal{
		{Holder: "a", Signal: SignalPermit, ID: "power-on-1", At: time.Second},
		{Holder: "b", Signal: SignalPermit, ID: "power-on-1", At: 40 * time.Second},
	})
	if got := queuedIDs(st); !slices.Equal(got, []string{"b/power-on-1"}) {
		t.Errorf("queued at 30s = %v, want b", got)
	}
}

// TestLimiterGrantToEndedHolder: a holder that cannot be signalled its
// grant (it ended) loses the permit at once, counted as reclaimed, and the
// next queued request gets it.
func TestLimiterGrantToEndedHolder(t *testing.T) {
	r := newLimiterRig(t)
	r.dead["gone"] = 0
	lim := RackLimits{Clones: 1}
	x, gone, b := request("x", PermitClone, lim), request("gone", PermitClone, lim), request("b", PermitClone, lim)
	r.acquire(time.Second, x)
	r.acquire(2*time.Second, gone)
	r.acquire(3*time.Second, b)
	var st LimiterState
	r.query(20*time.Second, &st)
	r.release(10*time.Second, x)
	r.release(30*time.Second, b)
	r.run(lim)
	r.wantSignals(SignalPermit, []holderSignal{
		{Holder: "x", Signal: SignalPermit, ID: "clone-1", At: time.Second},
		{Holder: "gone", Signal: SignalPermit, ID: "clone-1", At: 10 * time.Second, Failed: true},
		{Holder: "b", Signal: SignalPermit, ID: "clone-1", At: 10 * time.Second},
	})
	if st.Reclaimed != 1 || st.Grants != 3 || !slices.Equal(heldIDs(st), []string{"b/clone-1"}) || len(st.Queue) != 0 {
		t.Errorf("state at 20s = %+v, want b held, 3 grants, 1 reclaimed", st)
	}
}

// TestLimiterLease: when a lease runs out the limiter signals the holder;
// a holder that still runs keeps the permit with a renewed lease, one that
// ended (terminated, crashed) loses it and the queue moves on.
func TestLimiterLease(t *testing.T) {
	r := newLimiterRig(t)
	lim := RackLimits{InFlight: 1, PermitLease: 30 * time.Second}
	a, b := request("a", PermitInFlight, lim), request("b", PermitInFlight, lim)
	r.dead["a"] = 10 * time.Second // a is terminated at 10 s holding its permit
	r.acquire(time.Second, a)
	r.acquire(2*time.Second, b)
	var before, after LimiterState
	r.query(20*time.Second, &before)
	r.query(70*time.Second, &after)
	r.release(100*time.Second, b)
	r.run(lim)

	r.wantSignals(SignalPermit, []holderSignal{
		{Holder: "a", Signal: SignalPermit, ID: "in-flight-1", At: time.Second},
		{Holder: "b", Signal: SignalPermit, ID: "in-flight-1", At: 31 * time.Second},
	})
	r.wantSignals(SignalLease, []holderSignal{
		{Holder: "a", Signal: SignalLease, ID: "in-flight-1", At: 31 * time.Second, Failed: true},
		{Holder: "b", Signal: SignalLease, ID: "in-flight-1", At: 61 * time.Second},
		{Holder: "b", Signal: SignalLease, ID: "in-flight-1", At: 91 * time.Second},
	})
	if before.Reclaimed != 0 || !slices.Equal(heldIDs(before), []string{"a/in-flight-1"}) || !slices.Equal(queuedIDs(before), []string{"b/in-flight-1"}) {
		t.Errorf("state at 20s = %+v", before)
	}
	if after.Reclaimed != 1 || !slices.Equal(heldIDs(after), []string{"b/in-flight-1"}) {
		t.Fatalf("state at 70s = %+v, want b held and 1 reclaimed", after)
	}
	if got, want := after.Held[0].LeaseUntil.Sub(r.start), 91*time.Second; got != want {
		t.Errorf("b's lease runs to %s, want %s (renewed at 61 s)", got, want)
	}
}

// TestLimiterDuplicateAcquire: a request delivered twice (an activity
// retry) is granted once, whether it is queued or already held.
func TestLimiterDuplicateAcquire(t *testing.T) {
	r := newLimiterRig(t)
	lim := RackLimits{Clones: 1}
	a, b := request("a", PermitClone, lim), request("b", PermitClone, lim)
	r.acquire(time.Second, a)
	r.acquire(2*time.Second, a)
	r.acquire(3*time.Second, b)
	r.acquire(4*time.Second, b)
	var st LimiterState
	r.query(10*time.Second, &st)
	r.release(20*time.Second, a)
	r.release(30*time.Second, b)
	r.run(lim)
	r.wantSignals(SignalPermit, []holderSignal{
		{Holder: "a", Signal: SignalPermit, ID: "clone-1", At: time.Second},
		{Holder: "b", Signal: SignalPermit, ID: "clone-1", At: 20 * time.Second},
	})
	if !slices.Equal(heldIDs(st), []string{"a/clone-1"}) || !slices.Equal(queuedIDs(st), []string{"b/clone-1"}) || st.Grants != 1 {
		t.Errorf("state at 10s = %+v", st)
	}
}

// TestLimiterWithdrawQueued: releasing a request still queued withdraws it;
// it is never granted.
func TestLimiterWithdrawQueued(t *testing.T) {
	r := newLimiterRig(t)
	lim := RackLimits{Clones: 1}
	x, a, b := request("x", PermitClone, lim), request("a", PermitClone, lim), request("b", PermitClone, lim)
	r.acquire(time.Second, x)
	r.acquire(2*time.Second, a)
	r.acquire(3*time.Second, b)
	r.release(5*time.Second, a)
	var st LimiterState
	r.query(6*time.Second, &st)
	r.release(10*time.Second, x)
	r.release(20*time.Second, b)
	r.run(lim)
	r.wantSignals(SignalPermit, []holderSignal{
		{Holder: "x", Signal: SignalPermit, ID: "clone-1", At: time.Second},
		{Holder: "b", Signal: SignalPermit, ID: "clone-1", At: 10 * time.Second},
	})
	if !slices.Equal(queuedIDs(st), []string{"b/clone-1"}) {
		t.Errorf("queued after the withdrawal = %v, want b only", queuedIDs(st))
	}
}

// TestLimiterIdleEnd: a limiter with nothing held or queued ends after an
// idle hour; a request during the idle hour starts the hour again.
func TestLimiterIdleEnd(t *testing.T) {
	r := newLimiterRig(t)
	lim := RackLimits{InFlight: 4}
	a := request("a", PermitInFlight, lim)
	at := 30 * time.Minute
	r.acquire(at, a)
	r.release(at+time.Second, a)
	if ran, want := r.run(lim), at+time.Second+limiterIdle; ran != want {
		t.Errorf("limiter ran %s, want %s", ran, want)
	}
	if n := len(r.signals(SignalPermit)); n != 1 {
		t.Errorf("%d grants, want 1", n)
	}
}

// TestLimiterIdleNoRequests: a limiter started without a request (its
// first signal lost) still ends after an idle hour.
func TestLimiterIdleNoRequests(t *testing.T) {
	r := newLimiterRig(t)
	if ran := r.run(RackLimits{}); ran != limiterIdle {
		t.Errorf("limiter ran %s, want %s", ran, limiterIdle)
	}
}
